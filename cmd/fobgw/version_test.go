package main

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goVersionM reads `go version -m BIN`: the Go version, the main module's
// version, the build settings, and wireguard-go's line with " (patched)"
// when a replace line follows it.
func goVersionM(t *testing.T, bin string) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m %s: %v\n%s", bin, err, out)
	}
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	last := ""
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "\t") {
			_, v, _ := strings.Cut(line, ": ")
			m["go"] = v
			continue
		}
		f := strings.Split(strings.TrimPrefix(line, "\t"), "\t")
		switch f[0] {
		case "mod":
			m["fobgw"] = f[2]
		case "dep":
			last = f[1]
			if f[1] == "golang.zx2c4.com/wireguard" {
				m["wireguard-go"] = f[2]
			}
		case "=>":
			if last == "golang.zx2c4.com/wireguard" {
				m["wireguard-go"] += " (patched)"
			}
		case "build":
			k, v, _ := strings.Cut(f[1], "=")
			switch k {
			case "vcs.revision":
				m["revision"] = v
			case "vcs.time":
				m["time"] = v
			case "vcs.modified":
				m["modified"] = v
			}
		}
	}
	for _, k := range []string{"revision", "time", "modified"} {
		if _, ok := m[k]; !ok {
			m[k] = "unknown"
		}
	}
	return m
}

// TestVersionMatchesBinary builds fobgw as `make build` does and checks
// that `fobgw version` says what `go version -m` reads from the binary. In
// a git checkout it builds a fresh clone of HEAD (the go command stamps the
// commit only in a clone, not in a worktree) and checks that the commit is
// stamped.
func TestVersionMatchesBinary(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	head, gitErr := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	src := root
	if gitErr == nil {
		src = filepath.Join(tmp, "src")
		if out, err := exec.Command("git", "clone", "-q", root, src).CombinedOutput(); err != nil {
			t.Fatalf("git clone: %v\n%s", err, out)
		}
	}
	bin := filepath.Join(tmp, "bin")
	mk := exec.Command("make", "-C", src, "build", "BIN="+bin)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	fobgw := filepath.Join(bin, "fobgw")
	out, err := exec.Command(fobgw, "version").Output()
	if err != nil {
		t.Fatalf("fobgw version: %v", err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, " ")
		got[k] = strings.TrimSpace(v)
	}
	want := goVersionM(t, fobgw)
	for _, k := range []string{"fobgw", "revision", "time", "modified", "wireguard-go", "go"} {
		if got[k] != want[k] || want[k] == "" {
			t.Errorf("fobgw version says %s %q; go version -m says %q", k, got[k], want[k])
		}
	}
	if gitErr == nil && got["revision"] != strings.TrimSpace(string(head)) {
		t.Errorf("fobgw version says revision %q, want HEAD %s: make build does not stamp the commit", got["revision"], head)
	}
	if t.Failed() {
		t.Logf("fobgw version:\n%s", out)
	}
}
