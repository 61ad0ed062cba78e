package main

import (
	"fmt"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// measuredNeed is the soft memory limit of `fobgw run` outside a memory cgroup: in the lab
// fobgw's peak RSS stayed at 23-26 MiB with 8 TCP streams each way (bench/RESULTS.md, runs 8-9;
// 21-23 MiB since it gives back its start-up pages and runs GOGC 50, runs 10-13), 9-13 MiB of it
// the binary's own pages, so the garbage collector works harder only past
// what it was measured to need, with a margin. The patched wireguard-go sizes its packet buffer
// pool from the limit in force when the device is made (1/16 of it: 1536 buffers here), so
// applyMemoryLimit runs before the gateway starts.
const measuredNeed = 48 << 20

// gcPercent is the garbage collector's GOGC under `fobgw run` when the environment sets none.
// Most of a busy gateway's live heap is its packet buffers, made once and reused for as long
// as it runs; with Go's default of 100 the collector lets as much garbage again pile up before
// it runs. At 50, peak RSS after 8 TCP streams each way was 21.2-22.9 MiB where it was
// 23.7-24.3 at 100, at no CPU per Gbit the lab could tell (bench/RESULTS.md, run 10): what the
// gateway allocates after start is little, so collections stay rare.
const gcPercent = 50

// applyGCPercent sets GOGC to gcPercent unless the GOGC environment variable is set (the
// runtime has applied it then), and returns the value in force.
func applyGCPercent(getenv func(string) string) int {
	if v := getenv("GOGC"); v != "" {
		old := debug.SetGCPercent(100)
		debug.SetGCPercent(old)
		return old
	}
	debug.SetGCPercent(gcPercent)
	return gcPercent
}

// applyMemoryLimit sets the soft memory limit unless GOMEMLIMIT is set (the runtime has
// applied it then): three quarters of cgroupLimit, the hard limit of the process's memory
// cgroup (0: none), so that the collector works hard before the kernel's OOM killer does;
// otherwise measuredNeed. It returns the limit in force and where it came from.
func applyMemoryLimit(getenv func(string) string, cgroupLimit int64) (limit int64, source string) {
	if getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	}
	limit, source = measuredNeed, "default (what fobgw was measured to need)"
	if cgroupLimit > 0 {
		limit = cgroupLimit - cgroupLimit/4
		source = fmt.Sprintf("cgroup (3/4 of its memory limit of %d MiB)", cgroupLimit>>20)
	}
	debug.SetMemoryLimit(limit)
	return limit, source
}

// cgroupMemoryLimit returns the hard memory limit of the cgroup this process runs in, the
// smallest on the way up its hierarchy, 0 when there is none or it cannot be read. Both
// cgroup versions count: v2's memory.max and v1's memory.limit_in_bytes, each found where
// /proc/self/mountinfo mounts the hierarchy that /proc/self/cgroup names. root prefixes every
// path (tests); "/" in use. A few lines rather than a module for them (automemlimit and its
// dependencies) in a static binary for small boards.
func cgroupMemoryLimit(root string) int64 {
	cgroups, err := os.ReadFile(path.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0
	}
	mounts, err := os.ReadFile(path.Join(root, "proc/self/mountinfo"))
	if err != nil {
		return 0
	}
	var v1, v2 string // the process's cgroup in the v1 memory and the v2 hierarchy
	for _, line := range strings.Split(string(cgroups), "\n") {
		f := strings.SplitN(line, ":", 3) // hierarchy-ID:controllers:path
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "":
			v2 = f[2]
		case hasField(f[1], ",", "memory"):
			v1 = f[2]
		}
	}
	var limit int64
	for _, line := range strings.Split(string(mounts), "\n") {
		// ID parent major:minor root mount-point options [optional...] - fstype source super-options
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 {
			continue
		}
		var cg, file string
		switch {
		case g[0] == "cgroup2" && v2 != "":
			cg, file = v2, "memory.max"
		case g[0] == "cgroup" && v1 != "" && hasField(g[2], ",", "memory"):
			cg, file = v1, "memory.limit_in_bytes"
		default:
			continue
		}
		rel, ok := strings.CutPrefix(cg, f[3]) // the cgroup as seen from the mount's root
		if !ok {
			continue
		}
		for dir := path.Join(f[4], rel); ; dir = path.Dir(dir) {
			if l := readLimit(path.Join(root, dir, file)); l > 0 && (limit == 0 || l < limit) {
				limit = l
			}
			if dir == f[4] || dir == "/" {
				break
			}
		}
	}
	return limit
}

// readLimit reads a cgroup memory limit file: 0 for none ("max", v1's near-2^63 value) or
// an unreadable file.
func readLimit(name string) int64 {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0
	}
	return n
}

func hasField(s, sep, want string) bool {
	for _, f := range strings.Split(s, sep) {
		if f == want {
			return true
		}
	}
	return false
}
