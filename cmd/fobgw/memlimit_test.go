package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }

	for _, tt := range []struct {
		cgroup, want int64
		source       string
	}{
		{0, measuredNeed, "default"},        // no memory cgroup
		{48 << 20, 36 << 20, "cgroup"},      // MemoryMax=48M
		{64 << 20, 48 << 20, "cgroup"},      // MemoryMax=64M
		{1 << 30, 768 << 20, "cgroup (3/4"}, // a generous unit
	} {
		debug.SetMemoryLimit(math.MaxInt64)
		if limit, src := applyMemoryLimit(getenv, tt.cgroup); limit != tt.want || !strings.HasPrefix(src, tt.source) || debug.SetMemoryLimit(-1) != tt.want {
			t.Errorf("without GOMEMLIMIT, cgroup limit %d: %d from %s, runtime %d; want %d from %s", tt.cgroup, limit, src, debug.SetMemoryLimit(-1), tt.want, tt.source)
		}
	}
	// GOMEMLIMIT set: the runtime applied it at start; it is left alone.
	env["GOMEMLIMIT"] = "128MiB"
	debug.SetMemoryLimit(128 << 20)
	if limit, src := applyMemoryLimit(getenv, 48<<20); limit != 128<<20 || src != "GOMEMLIMIT" || debug.SetMemoryLimit(-1) != 128<<20 {
		t.Errorf("with GOMEMLIMIT: %d from %s, runtime %d; want %d", limit, src, debug.SetMemoryLimit(-1), 128<<20)
	}
}

// TestApplyGCPercent: GOGC is gcPercent unless the environment sets it, which the runtime has
// applied and which is left alone.
func TestApplyGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	if got := applyGCPercent(func(string) string { return "" }); got != gcPercent || debug.SetGCPercent(100) != gcPercent {
		t.Errorf("without GOGC: %d; want %d in force", got, gcPercent)
	}
	debug.SetGCPercent(200) // as the runtime would have for GOGC=200
	env := func(k string) string {
		if k == "GOGC" {
			return "200"
		}
		return ""
	}
	if got := applyGCPercent(env); got != 200 || debug.SetGCPercent(100) != 200 {
		t.Errorf("with GOGC=200: %d; want 200 left in force", got)
	}
}

// writeFiles makes a fake root: name -> content.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestCgroupMemoryLimit(t *testing.T) {
	const (
		v2mount = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
		v1mount = "31 23 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n" +
			"32 23 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
	)
	tests := []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"v2 unit with MemoryMax", map[string]string{
			"proc/self/cgroup":    "0::/system.slice/fobgw.service\n",
			"proc/self/mountinfo": v2mount,
			"sys/fs/cgroup/system.slice/fobgw.service/memory.max": "50331648\n",
			"sys/fs/cgroup/system.slice/memory.max":               "max\n",
		}, 48 << 20},
		{"v2 limit on a parent", map[string]string{
			"proc/self/cgroup":    "0::/board.slice/fobgw.service\n",
			"proc/self/mountinfo": v2mount,
			"sys/fs/cgroup/board.slice/fobgw.service/memory.max": "max\n",
			"sys/fs/cgroup/board.slice/memory.max":               "67108864\n",
		}, 64 << 20},
		{"v2 without limit", map[string]string{
			"proc/self/cgroup":                    "0::/user.slice\n",
			"proc/self/mountinfo":                 v2mount,
			"sys/fs/cgroup/user.slice/memory.max": "max\n",
		}, 0},
		{"v1 memory controller", map[string]string{
			"proc/self/cgroup":    "4:memory:/fobgw-test\n3:cpu:/\n0::/\n",
			"proc/self/mountinfo": v1mount + "33 23 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
			"sys/fs/cgroup/memory/fobgw-test/memory.limit_in_bytes": "50331648\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":            "9223372036854771712\n",
		}, 48 << 20},
		{"v1 in a container (mount root is the cgroup)", map[string]string{
			"proc/self/cgroup":                           "4:memory:/docker/abc\n",
			"proc/self/mountinfo":                        "31 23 0:27 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes": "134217728\n",
		}, 128 << 20},
		{"no cgroup files", map[string]string{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cgroupMemoryLimit(writeFiles(t, tt.files)); got != tt.want {
				t.Errorf("cgroupMemoryLimit = %d, want %d", got, tt.want)
			}
		})
	}
}
