package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// The control socket's protocol: the client sends one request, a JSON
// object on one line; the server answers with one JSON document and closes
// the connection. A client that sends nothing within requestWait gets the
// status, as clients of the first protocol expect.

// Request is one request on the control socket.
type Request struct {
	Op string `json:"op"` // OpStatus, OpPortalOpen, OpPortalClose
	// Device and For: OpPortalOpen's device (a LAN address or a MAC
	// address) and the window's length (0: portal.DefaultWindow).
	Device string        `json:"device,omitempty"`
	For    time.Duration `json:"for,omitempty"`
}

// The requests' operations.
const (
	OpStatus      = "status"
	OpPortalOpen  = "portal-open"
	OpPortalClose = "portal-close"
)

// requestWait is how long the server waits for a request before it takes
// the connection for a status request.
const requestWait = time.Second

// ReadStatus asks the gateway on the control socket at path for its status.
func ReadStatus(ctx context.Context, path string) (*Status, error) {
	var s Status
	if err := ask(ctx, path, Request{Op: OpStatus}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ask sends req to the gateway on the control socket at path and decodes its
// answer into reply.
func ask(ctx context.Context, path string, req Request, reply any) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (no answer on %s): start it with `fobgw run -config FILE` or `systemctl start fobgw`", ErrNotRunning, path)
		}
		return fmt.Errorf("connect to %s: %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return fmt.Errorf("send the request to %s: %w", path, err)
	}
	if err := json.NewDecoder(c).Decode(reply); err != nil {
		return fmt.Errorf("read the answer from %s: %w", path, err)
	}
	return nil
}

// controlServer answers each connection's request with one JSON document.
type controlServer struct {
	ln   net.Listener
	path string
	done chan struct{}
}

// controlHandler answers the control socket's requests; status answers
// OpStatus, portal the portal's (nil: none, answered with an error).
type controlHandler struct {
	status func() *Status
	portal func(Request) *PortalReply
}

// maxRequest bounds a request's line.
const maxRequest = 4 << 10

func (h controlHandler) serve(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(requestWait))
	req := Request{Op: OpStatus}
	line, err := bufio.NewReader(io.LimitReader(c, maxRequest)).ReadSlice('\n')
	var ne net.Error
	switch {
	case err == nil || (errors.Is(err, io.EOF) && len(line) > 0):
		if err := json.Unmarshal(line, &req); err != nil {
			json.NewEncoder(c).Encode(&PortalReply{Error: "a request is a JSON object on one line: " + err.Error()})
			return
		}
	case len(line) == 0 && (errors.Is(err, io.EOF) || errors.As(err, &ne) && ne.Timeout()):
		// No request: the status, for clients of the first protocol.
	default:
		return
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	switch req.Op {
	case OpStatus:
		json.NewEncoder(c).Encode(h.status())
	case OpPortalOpen, OpPortalClose:
		r := &PortalReply{Error: "captive portal windows are off (PortalCheck = off)"}
		if h.portal != nil {
			r = h.portal(req)
		}
		json.NewEncoder(c).Encode(r)
	default:
		json.NewEncoder(c).Encode(&PortalReply{Error: fmt.Sprintf("unknown request %q", req.Op)})
	}
}

func listenControl(path string, h controlHandler, log *slog.Logger) (*controlServer, error) {
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
				h.serve(c)
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
