// Command syscallfilter runs a program under the system call filter of a
// systemd unit, for machines without a running systemd (a container, CI):
// the lab runs fobgw with dist/fobgw.service's filter to show that the
// unit's SystemCallFilter= does not break it.
//
//	syscallfilter -unit dist/fobgw.service -- fobgw run -config FILE
//	syscallfilter -unit dist/fobgw.service -print
//
// It reads the unit's SystemCallFilter= lines as systemd does (the first
// line an allow-list; later ~ lines take from it, later plain lines add),
// expands the @groups with `systemd-analyze syscall-filter` (the same tables
// systemd applies), resolves the names for this architecture with libseccomp's
// scmp_sys_resolver, then sets no_new_privs, loads a seccomp filter on every
// thread that allows the list and fails everything else with the unit's
// SystemCallErrorNumber= (EPERM when unset, as `kill` is not supported
// here) and kills a caller of another architecture
// (SystemCallArchitectures=native), and execs the program.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	unit := flag.String("unit", "", "the systemd unit `FILE` whose SystemCallFilter= applies")
	print := flag.Bool("print", false, "print the allowed system calls (name number) and exit")
	flag.Parse()
	if err := run(*unit, *print, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "syscallfilter:", err)
		os.Exit(2)
	}
}

func run(unit string, print bool, args []string) error {
	if unit == "" || (!print && len(args) == 0) {
		return errors.New("usage: syscallfilter -unit FILE [-print] [-- PROGRAM ARGS...]")
	}
	rules, errno, err := readUnit(unit)
	if err != nil {
		return err
	}
	names, err := allowList(rules)
	if err != nil {
		return err
	}
	nrs := map[string]uint32{}
	for _, n := range names {
		nr, ok, err := resolve(n)
		if err != nil {
			return err
		}
		if ok {
			nrs[n] = nr
		}
	}
	if print {
		for _, n := range names {
			if nr, ok := nrs[n]; ok {
				fmt.Printf("%s %d\n", n, nr)
			}
		}
		return nil
	}
	prog, err := filter(nrs, errno)
	if err != nil {
		return err
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		return err
	}
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return fmt.Errorf("load the seccomp filter: %w", e)
	}
	return syscall.Exec(path, args, os.Environ())
}

// readUnit returns the unit's SystemCallFilter= values in order and its
// SystemCallErrorNumber= (EPERM when unset).
func readUnit(path string) (rules []string, errno syscall.Errno, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	errno = syscall.EPERM
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		switch {
		case !ok:
		case k == "SystemCallFilter":
			rules = append(rules, v)
		case k == "SystemCallErrorNumber":
			e, ok := errnos[v]
			if !ok {
				return nil, 0, fmt.Errorf("%s:%d: SystemCallErrorNumber=%s: want one of %v", path, line, v, keys(errnos))
			}
			errno = e
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	if len(rules) == 0 {
		return nil, 0, fmt.Errorf("%s has no SystemCallFilter= line", path)
	}
	return rules, errno, nil
}

var errnos = map[string]syscall.Errno{"EPERM": syscall.EPERM, "EACCES": syscall.EACCES, "ENOSYS": syscall.ENOSYS}

func keys(m map[string]syscall.Errno) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// allowList applies rules as systemd.exec(5) describes: the first rule is
// an allow-list, a later rule starting with ~ removes names, any other adds.
func allowList(rules []string) ([]string, error) {
	if strings.HasPrefix(rules[0], "~") {
		return nil, fmt.Errorf("SystemCallFilter=%s: a deny-list first is not supported; the unit should start with an allow-list", rules[0])
	}
	set := map[string]bool{}
	for _, r := range rules {
		deny := strings.HasPrefix(r, "~")
		for _, item := range strings.Fields(strings.TrimPrefix(r, "~")) {
			names, err := expand(item, 0)
			if err != nil {
				return nil, err
			}
			for _, n := range names {
				set[n] = !deny
			}
		}
	}
	var out []string
	for n, ok := range set {
		if ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// expand returns the system calls a name or @group stands for.
func expand(item string, depth int) ([]string, error) {
	if !strings.HasPrefix(item, "@") {
		return []string{item}, nil
	}
	if depth > 8 {
		return nil, fmt.Errorf("%s: groups nest too deep", item)
	}
	out, err := exec.Command("systemd-analyze", "syscall-filter", "--no-pager", item).Output()
	if err != nil {
		return nil, fmt.Errorf("systemd-analyze syscall-filter %s (package systemd): %w", item, err)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l == item || strings.HasPrefix(l, "#") {
			continue
		}
		sub, err := expand(l, depth+1)
		if err != nil {
			return nil, err
		}
		names = append(names, sub...)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("systemd-analyze knows no group %s", item)
	}
	return slices.Compact(names), nil
}

// resolve returns the number of the system call name on this architecture;
// ok is false for a name this architecture does not have (as systemd skips
// it).
func resolve(name string) (nr uint32, ok bool, err error) {
	out, err := exec.Command("scmp_sys_resolver", name).Output()
	if err != nil {
		return 0, false, fmt.Errorf("scmp_sys_resolver %s (package seccomp): %w", name, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, false, fmt.Errorf("scmp_sys_resolver %s said %q", name, out)
	}
	if n < 0 {
		return 0, false, nil
	}
	return uint32(n), true, nil
}

// auditArch is this architecture's AUDIT_ARCH_* (seccomp_data.arch).
var auditArch = map[string]uint32{
	"amd64": unix.AUDIT_ARCH_X86_64,
	"arm64": unix.AUDIT_ARCH_AARCH64,
	"arm":   unix.AUDIT_ARCH_ARM,
}

// x32Bit marks x32 system calls on amd64, which native excludes.
const x32Bit = 0x40000000

// filter is the classic BPF program: another architecture is killed, a
// listed system call allowed, any other fails with errno.
func filter(nrs map[string]uint32, errno syscall.Errno) ([]unix.SockFilter, error) {
	arch, ok := auditArch[runtime.GOARCH]
	if !ok {
		return nil, fmt.Errorf("no AUDIT_ARCH known for %s", runtime.GOARCH)
	}
	const (
		ldAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jset  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
		// offsets in struct seccomp_data
		offNr   = 0
		offArch = 4
	)
	deny := uint32(unix.SECCOMP_RET_ERRNO) | uint32(errno)
	p := []unix.SockFilter{
		{Code: ldAbs, K: offArch},
		{Code: jeq, Jt: 1, Jf: 0, K: arch},
		{Code: ret, K: unix.SECCOMP_RET_KILL_PROCESS},
		{Code: ldAbs, K: offNr},
	}
	if runtime.GOARCH == "amd64" {
		p = append(p, unix.SockFilter{Code: jset, Jt: 0, Jf: 1, K: x32Bit}, unix.SockFilter{Code: ret, K: deny})
	}
	var list []uint32
	for _, nr := range nrs {
		list = append(list, nr)
	}
	slices.Sort(list)
	for _, nr := range slices.Compact(list) {
		p = append(p, unix.SockFilter{Code: jeq, Jt: 0, Jf: 1, K: nr}, unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ALLOW})
	}
	p = append(p, unix.SockFilter{Code: ret, K: deny})
	if len(p) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("the filter has %d instructions, over the kernel's %d", len(p), unix.BPF_MAXINSNS)
	}
	return p, nil
}
