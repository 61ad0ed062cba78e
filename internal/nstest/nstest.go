// Package nstest runs a kernel test in a child process of its own, in a fresh
// network namespace, so that nothing it does can touch the machine's.
//
// A process, not a thread switched with netns.New: wireguard-go's sockets,
// policyroute's /proc/sys/net writes and the DNS forwarder run on any OS
// thread, and only a whole process in the namespace keeps every one of them
// there. The namespace disappears with the child, even if it crashes.
package nstest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const childEnv = "FOBGW_NETNS_CHILD"

// InFreshNetns reports whether this process is the child in the fresh
// network namespace, where the test goes on. Otherwise it runs the test
// (t.Name(), a top-level test) in such a child, fails t when the child
// does not pass it or when the process is not root, and returns false: the
// caller returns at once.
//
//	if !nstest.InFreshNetns(t) {
//		return
//	}
func InFreshNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) != "" {
		return true
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root (network namespaces, TUN, netlink): run the tests as root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	test := t.Name()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	t.Logf("child in a fresh network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("child failed: %v (could a network namespace be made? this test needs root)", err)
	}
	if !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("child did not pass %s", test)
	}
	return false
}

// LinkUp gives the link l in h the addresses addrs ("192.0.2.1/24",
// "2001:db8::1/64"), without duplicate address detection so that IPv6 ones
// are usable at once, and sets it up.
func LinkUp(tb testing.TB, h *netlink.Handle, l netlink.Link, addrs ...string) {
	tb.Helper()
	name := l.Attrs().Name
	for _, a := range addrs {
		addr, err := netlink.ParseAddr(a)
		if err != nil {
			tb.Fatal(err)
		}
		addr.Flags = unix.IFA_F_NODAD
		if err := h.AddrAdd(l, addr); err != nil {
			tb.Fatalf("address %s on %s: %v", a, name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		tb.Fatalf("set %s up: %v", name, err)
	}
}
