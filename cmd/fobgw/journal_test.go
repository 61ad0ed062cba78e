package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// stderrFile is a file standing in for stderr, and its "DEV:INODE" as
// systemd puts it into JOURNAL_STREAM.
func stderrFile(t *testing.T) (*os.File, string) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return f, fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

func TestJournalPriorities(t *testing.T) {
	f, stream := stderrFile(t)
	t.Setenv("JOURNAL_STREAM", stream)
	log := newLogger(f, true).With("part", "test")
	log.Debug("d")
	log.Info("i", "k", "v")
	log.Warn("the tunnel is down", "err", "timeout")
	log.Error("e")
	raw, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	want := []string{
		`<7>level=DEBUG msg=d part=test`,
		`<6>level=INFO msg=i part=test k=v`,
		`<4>level=WARN msg="the tunnel is down" part=test err=timeout`,
		`<3>level=ERROR msg=e part=test`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), raw)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
}

func TestNotJournal(t *testing.T) {
	_, stream := stderrFile(t)
	other, _ := stderrFile(t)
	for name, env := range map[string]string{
		"unset":        "",
		"other stream": stream, // JOURNAL_STREAM inherited, but stderr is another file
		"garbage":      "x:y",
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("JOURNAL_STREAM", env)
			if err := other.Truncate(0); err != nil {
				t.Fatal(err)
			}
			if _, err := other.Seek(0, 0); err != nil {
				t.Fatal(err)
			}
			newLogger(other, false).Warn("w")
			raw, err := os.ReadFile(other.Name())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(raw), "time=") || !strings.Contains(string(raw), "level=WARN msg=w") {
				t.Errorf("got %q, want a plain line with its time", raw)
			}
		})
	}
}
