package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// exposureBar is the highest `systemd-analyze security` exposure the unit
// may score (0 is best, 10 worst; Debian's wg-quick@ scores 9.6).
const exposureBar = 3.0

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var overall = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// exposure is the overall exposure `systemd-analyze security` gives unit.
func exposure(t *testing.T, unit string) float64 {
	t.Helper()
	// --offline: no running systemd needed (a container, CI).
	out := run(t, "systemd-analyze", "security", "--offline=yes", "--no-pager", unit)
	m := overall.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure in:\n%s", out)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestUnitSecurity(t *testing.T) {
	got := exposure(t, "fobgw.service")
	t.Logf("systemd-analyze security --offline=yes dist/fobgw.service: %.1f (bar %.1f)", got, exposureBar)
	if got > exposureBar {
		t.Errorf("the unit's exposure is %.1f, over the bar of %.1f", got, exposureBar)
	}
	// The measure can fail: the unit without its sandbox scores far worse.
	bare := filepath.Join(t.TempDir(), "bare.service")
	os.WriteFile(bare, []byte("[Service]\nExecStart=/usr/bin/fobgw run\n"), 0o644)
	if v := exposure(t, bare); v <= exposureBar {
		t.Errorf("a unit without any sandboxing scores %.1f, within the bar: the measure is broken", v)
	}
}

// TestDebianPackage builds the amd64 package as make package does,
// installs it with dpkg into this machine's root, checks what it installed,
// and purges it, checking that nothing is left behind. A purge in Cleanup
// undoes the install also when the test fails half way.
func TestDebianPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test installs a Debian package and needs root")
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", "fobgw").Output(); err == nil && len(out) > 0 &&
		!strings.Contains(string(out), "not-installed") {
		t.Fatalf("a fobgw package is on this machine already (%s); the test would remove it: dpkg --purge fobgw first", out)
	}
	if _, err := os.Stat("/etc/fobgw"); err == nil {
		t.Fatal("/etc/fobgw exists on this machine; the test's purge would delete it: move it away first")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	run(t, "make", "-C", root, "build", "BIN="+tmp)
	if err := os.Rename(filepath.Join(tmp, "fobgw"), filepath.Join(tmp, "fobgw-linux-amd64")); err != nil {
		t.Fatal(err)
	}
	out := run(t, "go", "-C", filepath.Join(root, "dist", "pkg"), "run", ".",
		"-root", root, "-bin", tmp, "-out", tmp, "-version", "0.0~test1", "amd64")
	deb := strings.TrimSpace(out)
	if filepath.Base(deb) != "fobgw_0.0~test1_amd64.deb" {
		t.Fatalf("dist/pkg wrote %q, want fobgw_0.0~test1_amd64.deb", deb)
	}

	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "--purge", "fobgw").CombinedOutput(); err != nil {
			t.Errorf("cleanup: dpkg --purge fobgw: %v\n%s", err, out)
		}
	})
	run(t, "dpkg", "-i", deb)
	var files []string // what dpkg installed, directories shared with others left out
	for _, p := range strings.Split(strings.TrimSpace(run(t, "dpkg", "-L", "fobgw")), "\n") {
		if fi, err := os.Stat(p); err == nil && (!fi.IsDir() || p == "/etc/fobgw") {
			files = append(files, p)
		}
	}
	for _, want := range []string{"/usr/bin/fobgw", "/lib/systemd/system/fobgw.service", "/etc/fobgw/fobgw.conf.example"} {
		if !contains(files, want) {
			t.Errorf("the package does not install %s (it has %v)", want, files)
		}
	}
	if c := run(t, "dpkg-query", "-W", "-f", "${Conffiles}", "fobgw"); !strings.Contains(c, "/etc/fobgw/fobgw.conf.example") {
		t.Errorf("/etc/fobgw/fobgw.conf.example is not a conffile: %q", c)
	}
	checkDir(t, "/etc/fobgw", 0o700, "root")
	checkDir(t, "/var/lib/fobgw", 0o700, "fobgw")
	if _, err := os.Stat("/etc/fobgw/fobgw.conf"); err == nil {
		t.Error("the package installed /etc/fobgw/fobgw.conf: the unit would start an unconfigured gateway")
	}
	if links, _ := filepath.Glob("/etc/systemd/system/*.wants/fobgw.service"); len(links) > 0 {
		t.Errorf("installing enabled the unit: %v", links)
	}

	ver := run(t, "/usr/bin/fobgw", "version")
	if !strings.HasPrefix(ver, "fobgw ") || !strings.Contains(ver, "wireguard-go ") {
		t.Errorf("fobgw version says:\n%s", ver)
	}
	if out := run(t, "systemd-analyze", "verify", "/lib/systemd/system/fobgw.service"); strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify of the installed unit says:\n%s", out)
	}
	if got := exposure(t, "/lib/systemd/system/fobgw.service"); got > exposureBar {
		t.Errorf("the installed unit's exposure is %.1f, over %.1f", got, exposureBar)
	}
	// verify can fail offline: a unit whose program is missing.
	broken := filepath.Join(tmp, "broken.service")
	os.WriteFile(broken, []byte("[Service]\nExecStart=/nonexistent/fobgw run\n"), 0o644)
	if err := exec.Command("systemd-analyze", "verify", broken).Run(); err == nil {
		t.Error("systemd-analyze verify passes a unit whose program is missing: it checks nothing here")
	}

	// What an owner does, so that purge has something to clean: a
	// configuration, a key, the unit enabled.
	os.WriteFile("/etc/fobgw/fobgw.conf", []byte("# edited\n"), 0o600)
	os.WriteFile("/var/lib/fobgw/private.key", []byte("key\n"), 0o600)
	run(t, "systemctl", "enable", "fobgw.service")

	run(t, "dpkg", "--purge", "fobgw")
	for _, p := range append(files, "/etc/fobgw", "/var/lib/fobgw", "/etc/systemd/system/multi-user.target.wants/fobgw.service") {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is left after dpkg --purge fobgw", p)
		}
	}
	for _, db := range []string{"passwd", "group"} {
		if err := exec.Command("getent", db, "fobgw").Run(); err == nil {
			t.Errorf("getent %s fobgw: still there after the purge", db)
		}
	}
	if out, _ := exec.Command("dpkg-query", "-W", "-f", "${Status}", "fobgw").Output(); len(out) > 0 && !strings.Contains(string(out), "not-installed") {
		t.Errorf("dpkg still knows fobgw after the purge: %s", out)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// checkDir fails t unless path is a directory with mode perm owned by user.
func checkDir(t *testing.T, path string, perm os.FileMode, user string) {
	t.Helper()
	out := strings.Fields(run(t, "stat", "-c", "%a %U", path))
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() || fi.Mode().Perm() != perm || out[1] != user {
		t.Errorf("%s: %v (mode %s, owner %s), want a directory %04o owned by %s", path, err, out[0], out[1], perm, user)
	}
}
