package gateway

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestControlSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	path := ControlSocket(dir, "fgwtest0")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := ReadStatus(ctx, path); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("no server: %v", err)
	}
	want := &Status{Name: "fgwtest0", RxBytes: 42, HandshakeAgeSeconds: -1}
	srv, err := listenControl(path, controlHandler{status: func() *Status { return want }}, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.close)
	for p, mode := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", p, fi.Mode().Perm(), mode)
		}
	}
	got, err := ReadStatus(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// A second server on the same path is refused while the first answers.
	if _, err := listenControl(path, controlHandler{status: func() *Status { return want }}, discardLogger()); err == nil {
		t.Errorf("second listener on a live socket accepted")
	}
}
