package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// unitUID is lab.sh's FOBL_UNIT_UID default: the uid fobgw-unit runs as.
const unitUID = "64086"

// twoCaps is the capability mask of CAP_NET_ADMIN (12) and CAP_NET_BIND_SERVICE (10).
const twoCaps = "0000000000001400"

// TestUnitSandbox: the gateway runs as dist/fobgw.service runs it (lab.sh gw fobgw-unit: a uid
// of its own with only CAP_NET_ADMIN and CAP_NET_BIND_SERVICE, no_new_privs, the unit's system
// call filter, its own /run, /var/lib/fobgw, /tmp and /proc with hidepid) and does its whole job:
// it writes the forwarding sysctl itself (lab.sh zeroes it first) and repairs it after drift, the
// client is through, the LAN's DNS answers on port 53, and its fobgw_build_info agrees with
// `go version -m` of the binary.
func TestUnitSandbox(t *testing.T) {
	lab.standard(t) // its cleanup starts the lab's own gateway again
	lab.labEnv(t, stdEnv, "gw", "fobgw-unit", "auto")
	pid := lab.gatewayPID(t)

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Name:\tfobgw\n",
		"Uid:\t" + strings.Repeat(unitUID+"\t", 3) + unitUID + "\n",
		"Gid:\t" + strings.Repeat(unitUID+"\t", 3) + unitUID + "\n",
		"CapPrm:\t" + twoCaps + "\n",
		"CapEff:\t" + twoCaps + "\n",
		"CapBnd:\t" + twoCaps + "\n",
		"CapAmb:\t" + twoCaps + "\n",
		"NoNewPrivs:\t1\n",
		"Seccomp:\t2\n", // a filter
	} {
		if !strings.Contains(string(status), want) {
			t.Errorf("the gateway's /proc/%d/status lacks %q:\n%s", pid, want, status)
		}
	}

	sysctl := func() (string, error) {
		out, err := ns("muc", "sysctl", "-n", "net.ipv4.ip_forward")
		return strings.TrimSpace(out), err
	}
	if v, err := sysctl(); err != nil || v != "1" {
		t.Errorf("net.ipv4.ip_forward at muc is %q (%v): the gateway did not set it", v, err)
	}
	if got, err := publicAddress("client"); err != nil || got != lab.begAddress(t) {
		t.Errorf("the client's public address is %q (%v), want the home router's %s", got, err, lab.begAddress(t))
	}
	if got, err := dig("client", "192.168.86.1", "tv.example", false); err != nil || len(got) != 1 || got[0] != homeCDN {
		t.Errorf("tv.example through the gateway's DNS: %v (%v), want %s", got, err, homeCDN)
	}
	mustNS(t, "muc", "sysctl", "-qw", "net.ipv4.ip_forward=0")
	took := waitFor(t, "the gateway repairs ip_forward", 30*time.Second, func() error {
		if v, err := sysctl(); err != nil || v != "1" {
			return fmt.Errorf("ip_forward is %q (%v)", v, err)
		}
		return nil
	})
	t.Logf("the sandboxed gateway repaired ip_forward after %v", took.Round(100*time.Millisecond))

	metrics := mustNS(t, "muc", "curl", "-fsS", "--max-time", "3", "http://127.0.0.1:9636/metrics")
	m := regexp.MustCompile(`(?m)^fobgw_build_info\{(.*)\} 1$`).FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no fobgw_build_info 1 in the metrics:\n%s", metrics)
	}
	labels := map[string]string{}
	for _, kv := range regexp.MustCompile(`(\w+)="([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
		labels[kv[1]] = kv[2]
	}
	want := goVersionM(t, filepath.Join(lab.bin, "fobgw"))
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("fobgw_build_info's %s is %q; go version -m says %q", k, labels[k], v)
		}
	}
}

// goVersionM reads the labels of fobgw_build_info from `go version -m BIN`: the main module's
// version, vcs.revision ("unknown" when not stamped), the Go version, and wireguard-go's
// version with " (patched)" when go.mod replaces it.
func goVersionM(t *testing.T, bin string) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m %s: %v\n%s", bin, err, out)
	}
	m := map[string]string{"revision": "unknown"}
	dep := ""
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(strings.TrimPrefix(line, "\t"), "\t")
		switch {
		case !strings.HasPrefix(line, "\t"):
			if _, v, ok := strings.Cut(line, ": "); ok {
				m["goversion"] = v
			}
		case f[0] == "mod" && len(f) > 2:
			m["version"] = f[2]
		case f[0] == "dep" && len(f) > 2:
			dep = f[1]
			if dep == "golang.zx2c4.com/wireguard" {
				m["wireguard"] = f[2]
			}
		case f[0] == "=>" && dep == "golang.zx2c4.com/wireguard":
			m["wireguard"] += " (patched)"
		case f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision="):
			m["revision"] = strings.TrimPrefix(f[1], "vcs.revision=")
		}
	}
	if m["version"] == "" || m["wireguard"] == "" || m["goversion"] == "" {
		t.Fatalf("could not read go version -m %s:\n%s", bin, out)
	}
	return m
}
