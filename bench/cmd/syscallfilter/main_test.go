package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func writeUnit(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "test.service")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAllowList: the first SystemCallFilter= line is the allow-list, a later ~ line takes from
// it, a later plain line adds; groups expand through systemd-analyze.
func TestAllowList(t *testing.T) {
	unit := writeUnit(t, "[Service]\nSystemCallFilter=@system-service\nSystemCallFilter=~@privileged @resources\nSystemCallFilter=setrlimit\nSystemCallErrorNumber=EACCES\n")
	rules, errno, err := readUnit(unit)
	if err != nil {
		t.Fatal(err)
	}
	if errno != syscall.EACCES {
		t.Errorf("errno %v, want EACCES", errno)
	}
	names, err := allowList(rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"ioctl", "socket", "sendmsg", "execve", "setrlimit"} {
		if !slices.Contains(names, in) {
			t.Errorf("%s is not allowed", in)
		}
	}
	for _, out := range []string{"setuid", "capset", "mount", "setpriority", "init_module"} {
		if slices.Contains(names, out) {
			t.Errorf("%s is allowed", out)
		}
	}
	if _, err := allowList([]string{"~@mount"}); err == nil {
		t.Error("a deny-list first was accepted")
	}
}

// TestFilterApplies: a program under the filter runs, and a system call outside the list fails
// with EPERM (mount, from @privileged, via unshare).
func TestFilterApplies(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "syscallfilter")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	unit := writeUnit(t, "[Service]\nSystemCallFilter=@system-service\nSystemCallFilter=~@privileged @resources\n")
	if out, err := exec.Command(bin, "-unit", unit, "--", "true").CombinedOutput(); err != nil {
		t.Fatalf("true under the filter: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-unit", unit, "--", "unshare", "--mount", "true").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not permitted") {
		t.Errorf("unshare --mount under the filter: %v\n%s\nwant it refused with EPERM", err, out)
	}
	// Control: without the filter, unshare works here (root).
	if out, err := exec.Command("unshare", "--mount", "true").CombinedOutput(); err != nil {
		t.Errorf("control: unshare --mount without the filter fails: %v\n%s", err, out)
	}
}
