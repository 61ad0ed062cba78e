package gateway

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
)

// TestListenUAPIRetriesAVanishedSocket: a socket file removed between its creation and its
// watch is made again, with a warning; a file that keeps vanishing, or another error, ends in
// an error that names the socket, without more tries.
func TestListenUAPIRetriesAVanishedSocket(t *testing.T) {
	open := func(string) (*os.File, error) { return os.Open(os.DevNull) }
	var fake net.Listener = &net.UnixListener{}
	vanish := &fs.PathError{Op: "inotify_add_watch", Path: "/x", Err: fs.ErrNotExist}

	for _, tt := range []struct {
		name      string
		failures  []error // what listen returns, try by try, before it succeeds
		wantTries int
		wantErr   string
		wantWarns int
	}{
		{"first try", nil, 1, "", 0},
		{"vanished once", []error{vanish}, 2, "", 1},
		{"vanishes every time", []error{vanish, vanish, vanish}, uapiTries, "listen on the UAPI socket " + UAPIDir + "/t0.sock", uapiTries - 1},
		{"another error", []error{errors.New("no inotify")}, 1, "no inotify", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logged bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logged, nil))
			tries := 0
			listen := func(string, *os.File) (net.Listener, error) {
				tries++
				if tries <= len(tt.failures) {
					return nil, tt.failures[tries-1]
				}
				return fake, nil
			}
			l, err := listenUAPI("t0", open, listen, log)
			if tries != tt.wantTries {
				t.Errorf("%d tries, want %d", tries, tt.wantTries)
			}
			if tt.wantErr == "" && (err != nil || l != fake) {
				t.Errorf("got %v, %v; want the listener", l, err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("got %v, %v; want an error with %q", l, err, tt.wantErr)
			}
			if n := strings.Count(logged.String(), "level=WARN"); n != tt.wantWarns {
				t.Errorf("%d warnings, want %d:\n%s", n, tt.wantWarns, logged.String())
			}
		})
	}
}
