package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DefaultRunDir holds the control sockets, <RunDir>/<Name>.sock.
const DefaultRunDir = "/run/fobgw"

// Status is the document the control socket answers with (`fobgw status -json`).
type Status struct {
	Name       string    `json:"name"`
	Time       time.Time `json:"time"`
	TunnelUp   bool      `json:"tunnel_up"` // a handshake less than 180 s old (REJECT_AFTER_TIME)
	ListenPort int       `json:"listen_port"`

	LastHandshake       time.Time `json:"last_handshake,omitzero"`
	HandshakeAgeSeconds float64   `json:"handshake_age_seconds"` // -1: never
	Endpoint            string    `json:"endpoint"`              // current address:port, "" while unresolved
	EndpointName        string    `json:"endpoint_name"`         // the DDNS name it came from, "" for a literal
	EndpointRecords     []string  `json:"endpoint_records,omitempty"`
	RxBytes             uint64    `json:"rx_bytes"`
	TxBytes             uint64    `json:"tx_bytes"`

	Clamp ClampStatus `json:"clamp"`
	DNS   DNSStatus   `json:"dns"`

	RouteRepairs    uint64 `json:"route_repairs"`
	RouteCheckError string `json:"route_check_error,omitempty"`

	ProbeMisses      int       `json:"probe_misses"` // consecutive
	ProbeMissesTotal uint64    `json:"probe_misses_total"`
	Probes           uint64    `json:"probes"`
	ProbesSilent     uint64    `json:"probes_silent"` // unanswered while the peer was sending (not misses)
	LastProbeOK      time.Time `json:"last_probe_ok,omitzero"`
	EndpointChanges  uint64    `json:"endpoint_changes"`
	Reresolutions    uint64    `json:"reresolutions"`
	ResolveFailures  uint64    `json:"resolve_failures"`
	LastError        string    `json:"last_error,omitempty"`
}

// ClampStatus are mssclamp's counters.
type ClampStatus struct {
	Enabled    bool   `json:"enabled"`
	ClampedOut uint64 `json:"clamped_out"` // SYNs from the LAN
	ClampedIn  uint64 `json:"clamped_in"`  // SYN-ACKs from the tunnel
	Malformed  uint64 `json:"malformed"`
}

// DNSStatus are the DNS forwarder's main counters.
type DNSStatus struct {
	Queries          uint64 `json:"queries"`
	OK               uint64 `json:"ok"`
	NXDomain         uint64 `json:"nxdomain"`
	ServFail         uint64 `json:"servfail"`
	Dropped          uint64 `json:"dropped"`
	CacheHits        uint64 `json:"cache_hits"`
	CacheMisses      uint64 `json:"cache_misses"`
	UpstreamTimeouts uint64 `json:"upstream_timeouts"`
	UpstreamErrors   uint64 `json:"upstream_errors"`
	InFlight         int64  `json:"in_flight"`
}

// WriteText prints s for a person.
func (s *Status) WriteText(w io.Writer) error {
	up := "down"
	if s.TunnelUp {
		up = "up"
	}
	hs := "never"
	if !s.LastHandshake.IsZero() {
		hs = fmt.Sprintf("%s (%s ago)", s.LastHandshake.Format(time.RFC3339), time.Duration(s.HandshakeAgeSeconds*float64(time.Second)).Round(time.Second))
	}
	ep := s.Endpoint
	if ep == "" {
		ep = "(not resolved yet)"
	}
	if s.EndpointName != "" {
		ep += " from " + s.EndpointName
		if len(s.EndpointRecords) > 1 {
			ep += " [" + strings.Join(s.EndpointRecords, " ") + "]"
		}
	}
	clamp := "off"
	if s.Clamp.Enabled {
		clamp = fmt.Sprintf("%d out, %d in, %d malformed", s.Clamp.ClampedOut, s.Clamp.ClampedIn, s.Clamp.Malformed)
	}
	_, err := fmt.Fprintf(w, `interface:        %s (listening on UDP %d)
tunnel:           %s
last handshake:   %s
endpoint:         %s
transfer:         %d B received, %d B sent
mss clamp:        %s
dns:              %d queries: %d ok, %d nxdomain, %d servfail, %d dropped; cache %d hits, %d misses; upstream %d timeouts, %d errors
route repairs:    %d
probes:           %d sent, %d missed now, %d missed in all; endpoint changed %d times, re-resolved %d times (%d failures)
`, s.Name, s.ListenPort, up, hs, ep, s.RxBytes, s.TxBytes, clamp,
		s.DNS.Queries, s.DNS.OK, s.DNS.NXDomain, s.DNS.ServFail, s.DNS.Dropped, s.DNS.CacheHits, s.DNS.CacheMisses,
		s.DNS.UpstreamTimeouts, s.DNS.UpstreamErrors,
		s.RouteRepairs, s.Probes, s.ProbeMisses, s.ProbeMissesTotal, s.EndpointChanges, s.Reresolutions, s.ResolveFailures)
	if err == nil && s.RouteCheckError != "" {
		_, err = fmt.Fprintf(w, "route check:      %s\n", s.RouteCheckError)
	}
	if err == nil && s.LastError != "" {
		_, err = fmt.Fprintf(w, "last error:       %s\n", s.LastError)
	}
	return err
}

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
