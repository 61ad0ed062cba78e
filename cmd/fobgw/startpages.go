package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The binary's own pages are most of fobgw's resident memory: about 13 MiB of a peak of
// 23-25 MiB in the lab (bench/RESULTS.md), nearly all of its code and read-only data. Start-up
// reads far more of it than a running gateway needs (the configuration parser, the netlink and
// nftables set-up, the checks), and the kernel maps the neighbours of every page read in
// (fault-around), so they stay counted in the process's RSS, and in the memory a small board
// has to keep for it, though nothing uses them again. Once the gateway is up,
// releaseStartupPages unmaps the binary's read-only mappings (madvise MADV_DONTNEED); what the
// running gateway uses comes back at its next touch, from the page cache, so what stays mapped
// is its working set. Only read-only mappings are touched: nothing in them was ever written, so
// nothing can be lost.

// span is one mapping of the executable: [start, end).
type span struct{ start, end uintptr }

// readOnlyMappings returns the private, read-only mappings of the file dev:ino (maps is
// /proc/self/maps: "start-end perms offset dev inode path"; dev is major:minor in hex).
func readOnlyMappings(maps io.Reader, major, minor uint32, ino uint64) ([]span, error) {
	var out []span
	sc := bufio.NewScanner(maps)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue // anonymous
		}
		perms, dev, inode := f[1], f[3], f[4]
		if len(perms) != 4 || perms[1] != '-' || perms[3] != 'p' {
			continue // writable or shared
		}
		if n, err := strconv.ParseUint(inode, 10, 64); err != nil || n != ino {
			continue
		}
		maj, min, ok := strings.Cut(dev, ":")
		ma, err1 := strconv.ParseUint(maj, 16, 32)
		mi, err2 := strconv.ParseUint(min, 16, 32)
		if !ok || err1 != nil || err2 != nil || uint32(ma) != major || uint32(mi) != minor {
			continue
		}
		a, b, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(a, 16, 64)
		end, err2 := strconv.ParseUint(b, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("/proc/self/maps: cannot read the range %q", f[0])
		}
		out = append(out, span{uintptr(start), uintptr(end)})
	}
	return out, sc.Err()
}

// releaseStartupPages unmaps the executable's read-only pages (see above) and returns how
// many bytes of mappings it released.
func releaseStartupPages() (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return 0, err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	spans, err := readOnlyMappings(f, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	if err != nil {
		return 0, err
	}
	if len(spans) == 0 {
		return 0, fmt.Errorf("/proc/self/maps lists no read-only mapping of the executable (inode %d)", st.Ino)
	}
	var n int64
	for _, s := range spans {
		// The raw system call: the ranges are the kernel's, not Go memory.
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, s.start, s.end-s.start, unix.MADV_DONTNEED); e != 0 {
			return n, fmt.Errorf("madvise %#x-%#x: %w", s.start, s.end, e)
		}
		n += int64(s.end - s.start)
	}
	return n, nil
}
