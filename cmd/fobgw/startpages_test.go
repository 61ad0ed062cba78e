package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestReadOnlyMappings(t *testing.T) {
	maps := `00400000-00acb000 r-xp 00000000 fe:00 10002595                           /usr/bin/fobgw
00acb000-01248000 r--p 006cb000 fe:00 10002595                           /usr/bin/fobgw
01248000-012b6000 rw-p 00e48000 fe:00 10002595                           /usr/bin/fobgw
012b6000-012f0000 rw-p 00000000 00:00 0
7f0000000000-7f0000001000 r--s 00000000 fe:00 10002595                   /usr/bin/fobgw
7f0000002000-7f0000003000 r--p 00000000 fe:01 10002595                   /other/device
7f0000004000-7f0000005000 r--p 00000000 fe:00 10002596                   /usr/bin/other
7f0000006000-7f0000007000 r-xp 00001000 fe:00 10002595                   /usr/bin/fobgw (deleted)
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
`
	got, err := readOnlyMappings(strings.NewReader(maps), 0xfe, 0, 10002595)
	if err != nil {
		t.Fatal(err)
	}
	want := []span{{0x400000, 0xacb000}, {0xacb000, 0x1248000}, {0x7f0000006000, 0x7f0000007000}}
	if len(got) != len(want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: got %x, want %x", i, got[i], want[i])
		}
	}
	if _, err := readOnlyMappings(strings.NewReader("zz-00 r--p 0 fe:00 10002595 /usr/bin/fobgw\n"), 0xfe, 0, 10002595); err == nil {
		t.Error("an unreadable range was accepted")
	}
}

// rssFile returns the process's resident file-backed memory (RssFile, /proc/self/status) in KiB.
func rssFile(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("RssFile: %v", err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestReleaseStartupPages: in this test binary (a Go executable like fobgw), the pages read
// so far are unmapped, and the process goes on running the code it needs.
func TestReleaseStartupPages(t *testing.T) {
	before := rssFile(t)
	n, err := releaseStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	t.Logf("released %d KiB of mappings: RssFile %d -> %d KiB", n>>10, before, after)
	if n <= 0 || after >= before-before/4 {
		t.Errorf("RssFile %d KiB before, %d KiB after releasing %d KiB of mappings: want at least a quarter less", before, after, n>>10)
	}
	// The code runs on: a second call reads the maps again through everything it needs.
	if _, err := releaseStartupPages(); err != nil {
		t.Fatal(err)
	}
}
