package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ControlSocket returns the control socket path of the gateway called name.
func ControlSocket(runDir, name string) string {
	if runDir == "" {
		runDir = DefaultRunDir
	}
	return filepath.Join(runDir, name+".sock")
}

// ErrNotRunning means no gateway answers on the control socket.
var ErrNotRunning = errors.New("fobgw is not running")

// ReadStatus asks the gateway on the control socket at path for its status.
func ReadStatus(ctx context.Context, path string) (*Status, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (no answer on %s): start it with `fobgw run -config FILE` or `systemctl start fobgw`", ErrNotRunning, path)
		}
		return nil, fmt.Errorf("connect to %s: %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	var s Status
	if err := json.NewDecoder(c).Decode(&s); err != nil {
		return nil, fmt.Errorf("read the status from %s: %w", path, err)
	}
	return &s, nil
}

// controlServer answers every connection with one JSON Status document.
type controlServer struct {
	ln   net.Listener
	path string
	done chan struct{}
}

func listenControl(path string, status func() *Status, log *slog.Logger) (*controlServer, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("chmod 700 %s: %w", dir, err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another fobgw answers on it: stop it first", path)
	}
	os.Remove(path) // stale, from a crashed run
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on the control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod 600 %s: %w", path, err)
	}
	s := &controlServer{ln: ln, path: path, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					log.Error("control socket stopped", "path", path, "err", err)
				}
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				json.NewEncoder(c).Encode(status())
			}()
		}
	}()
	return s, nil
}

func (s *controlServer) close() {
	s.ln.Close() // unlinks the socket
	<-s.done
}

func socketAlive(path string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := ReadStatus(ctx, path)
	return err == nil
}
