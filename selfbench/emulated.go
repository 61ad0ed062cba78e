package selfbench

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Emulated reports whether the process runs under qemu-user, where the figures measure the
// emulator, not the CPU. qemu-user rewrites /proc/self/maps to show the guest's mappings only,
// but passes a thread's own maps file (/proc/self/task/TID/maps) through, and there the
// emulator's binary shows.
func Emulated() bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/maps", syscall.Gettid()))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		name := f[len(f)-1]
		if i := strings.LastIndexByte(name, '/'); i >= 0 {
			name = name[i+1:]
		}
		if strings.HasPrefix(name, "qemu-") {
			return true
		}
	}
	return false
}
