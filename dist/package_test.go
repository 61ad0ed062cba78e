package dist

import (
	"bytes"
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

// sandboxDeb, set in the environment, names the package that TestDebianPackage installs: the test
// then runs in the throwaway root that the outer run made for it.
const sandboxDeb = "FOBGW_TEST_SANDBOX_DEB"

// sandboxScript runs the test binary ($3 and on) chrooted into an overlay of the machine's root
// file system whose writable layer is a tmpfs at $1/layers, mounted at $1/root, with /proc, /sys
// and /dev bound in, and with the directory $2 (the package and the binary) bound at its own path.
// unshare runs it in a mount namespace of its own with private propagation: every mount, and
// every file the install writes, goes when it exits.
const sandboxScript = `
set -eu
d=$1 keep=$2
shift 2
mount -t tmpfs -o mode=0700 fobgw-test-layers "$d/layers"
mkdir "$d/layers/upper" "$d/layers/work"
mount -t overlay fobgw-test-root -o "lowerdir=/,upperdir=$d/layers/upper,workdir=$d/layers/work" "$d/root"
for m in /proc /sys /dev; do mount --rbind "$m" "$d/root$m"; done
mkdir -p "$d/root$keep"
mount --bind "$keep" "$d/root$keep"
exec chroot "$d/root" "$@"
`

// TestDebianPackage builds the amd64 package as make package does, then
// runs itself again in a private mount namespace, chrooted into an overlay
// of the machine's root (unshare and overlayfs), where it installs the
// package with dpkg, checks what it installed, and purges it, checking that
// nothing is left behind. The machine's root is never written: the test
// shows it by comparing dpkg's status, /etc/passwd, /etc/group and
// /etc/shadow before and after, byte for byte.
func TestDebianPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test installs a Debian package in a mount namespace of its own and needs root")
	}
	if deb := os.Getenv(sandboxDeb); deb != "" {
		installAndPurge(t, deb)
		return
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
	// The package's path is dist/pkg's standard output alone: on a fresh machine the go
	// command writes "go: downloading ..." lines to standard error first.
	pkg := exec.Command("go", "-C", filepath.Join(root, "dist", "pkg"), "run", ".",
		"-root", root, "-bin", tmp, "-out", tmp, "-version", "0.0~test1", "amd64")
	var stderr bytes.Buffer
	pkg.Stderr = &stderr
	out, err := pkg.Output()
	if err != nil {
		t.Fatalf("dist/pkg: %v\n%s", err, stderr.Bytes())
	}
	deb := strings.TrimSpace(string(out))
	if filepath.Base(deb) != "fobgw_0.0~test1_amd64.deb" {
		t.Fatalf("dist/pkg wrote %q, want fobgw_0.0~test1_amd64.deb", deb)
	}
	// The test binary, where the chroot sees it (its own directory may be gone from the root file
	// system's view: go test's work directory).
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tmp, "dist.test")
	run(t, "cp", self, bin)
	sandbox := t.TempDir()
	for _, d := range []string{"layers", "root"} {
		if err := os.Mkdir(filepath.Join(sandbox, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}

	watched := []string{"/var/lib/dpkg/status", "/etc/passwd", "/etc/group", "/etc/shadow"}
	before := map[string][]byte{}
	for _, f := range watched {
		if before[f], err = os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", sandboxScript, "sandbox",
		sandbox, tmp, bin, "-test.run", "^TestDebianPackage$", "-test.v", "-test.count", "1")
	cmd.Env = append(os.Environ(), sandboxDeb+"="+deb)
	out2, err := cmd.CombinedOutput()
	t.Logf("in the overlay root:\n%s", out2)
	if err != nil {
		t.Errorf("the test in the overlay root failed: %v", err)
	} else if !strings.Contains(string(out2), "--- PASS: TestDebianPackage") {
		t.Errorf("the test in the overlay root did not pass")
	}
	for _, f := range watched {
		after, err := os.ReadFile(f)
		if err != nil || !bytes.Equal(after, before[f]) {
			t.Errorf("the machine's %s changed (%v): the install was not confined to the overlay", f, err)
		}
	}
	for _, p := range []string{"/usr/bin/fobgw", "/etc/fobgw", "/var/lib/fobgw"} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("the machine has %s after the test", p)
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err != nil || strings.Contains(string(b), "fobgw-test-") {
		t.Errorf("a mount of the test's sandbox is in the machine's namespace (%v)", err)
	}
}

// installAndPurge installs deb with dpkg into a root that must be the throwaway overlay
// TestDebianPackage made, checks what it installed, and purges it. A purge in Cleanup undoes the
// install also when the test fails half way (the overlay goes anyway).
func installAndPurge(t *testing.T, deb string) {
	if fs := strings.TrimSpace(run(t, "findmnt", "-n", "-o", "FSTYPE", "/")); fs != "overlay" {
		t.Fatalf("the root file system is %s, not the test's overlay: refusing to install into it", fs)
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Status}", "fobgw").Output(); err == nil && len(out) > 0 &&
		!strings.Contains(string(out), "not-installed") {
		t.Fatalf("a fobgw package is installed on this machine (%s): the test could not tell its files from the package's", out)
	}
	if _, err := os.Stat("/etc/fobgw"); err == nil {
		t.Fatal("/etc/fobgw exists on this machine: the test could not tell its files from the package's")
	}
	tmp := t.TempDir()

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
	t.Logf("dpkg installed %s; the package's user: %s", strings.Join(files, " "), strings.TrimSpace(run(t, "getent", "passwd", "fobgw")))
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
