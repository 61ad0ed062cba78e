package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fobgw/fobgw/selfbench"
)

// benchChild, when set in the environment, makes the test binary run `fobgw bench` with its
// arguments instead of the tests, refusing to run as root: TestBenchUnprivileged starts it
// as an unprivileged user.
const benchChild = "FOBGW_TEST_BENCH_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(benchChild) == "1" {
		if os.Getuid() == 0 || os.Geteuid() == 0 {
			os.Stderr.WriteString("bench child: running as root, want an unprivileged user\n")
			os.Exit(3)
		}
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestBenchUnprivileged runs `fobgw bench -json` briefly as an unprivileged user (nobody,
// through setpriv, when the test runs as root) and checks what it prints.
func TestBenchUnprivileged(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"bench", "-seconds", "0.3", "-json"}
	var cmd *exec.Cmd
	if os.Getuid() == 0 {
		// A copy that nobody may read and run: go test's own directory is root's alone.
		dir, err := os.MkdirTemp("", "fobgw-bench-test-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "fobgw.test")
		if err := copyFile(self, bin, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", bin}, args...)...)
		cmd.Dir = dir
	} else {
		cmd = exec.Command(self, args...)
	}
	cmd.Env = append(os.Environ(), benchChild+"=1")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%v: %v\n%s%s", cmd.Args, err, out, stderr)
	}
	var r selfbench.Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("fobgw bench -json printed no result: %v\n%s", err, out)
	}
	if len(r.Runs) != 4 || r.PeakRSSKiB <= 0 || len(r.Published) == 0 {
		t.Fatalf("fobgw bench -json: %d measurements, peak RSS %d KiB, %d published figures:\n%s", len(r.Runs), r.PeakRSSKiB, len(r.Published), out)
	}
	for _, m := range r.Runs {
		if m.Mbps <= 0 || m.CPUPerGbit <= 0 {
			t.Errorf("%d streams %s: %.1f Mbit/s, %.1f CPU ms per Gbit: want positive", m.Streams, m.Direction, m.Mbps, m.CPUPerGbit)
		}
	}
}

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{{"bench", "-seconds", "0"}, {"bench", "-seconds", "-1"}, {"bench", "-seconds", "NaN"}, {"bench", "extra"}} {
		if code := run(args, nil, io.Discard, io.Discard); code != exitUsage {
			t.Errorf("fobgw %v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}
