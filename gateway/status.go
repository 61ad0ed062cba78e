package gateway

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fobgw/fobgw/dnsfwd"
	"github.com/fobgw/fobgw/health"
)

// DefaultRunDir holds the control sockets, <RunDir>/<Name>.sock.
const DefaultRunDir = "/run/fobgw"

// Status is the document the control socket answers with (`fobgw status -json`).
type Status struct {
	Name     string    `json:"name"`
	Time     time.Time `json:"time"`
	TunnelUp bool      `json:"tunnel_up"` // a handshake less than 180 s old (REJECT_AFTER_TIME)
	// AtHome: the LAN reaches home through the tunnel (homeVerdict); when
	// not, AwayReason says why ("" when at home).
	AtHome     bool   `json:"at_home"`
	AwayReason string `json:"away_reason"`
	ListenPort int    `json:"listen_port"`

	LastHandshake       time.Time `json:"last_handshake,omitzero"`
	HandshakeAgeSeconds float64   `json:"handshake_age_seconds"` // -1: never
	HandshakeKicks      uint64    `json:"handshake_kicks"`       // handshakes started at once when a probe found the peer silent
	Endpoint            string    `json:"endpoint"`              // current address:port, "" while unresolved
	RxBytes             uint64    `json:"rx_bytes"`
	TxBytes             uint64    `json:"tx_bytes"`

	Clamp   ClampStatus    `json:"clamp"`
	Buffers *BuffersStatus `json:"buffers,omitempty"` // wireguard-go's packet buffers; nil before the tunnel
	MTU     *MTUStatus     `json:"mtu,omitempty"`     // the tunnel MTU: ceiling, measured path, effective
	DNS     dnsfwd.Stats   `json:"dns"`               // the forwarder's counters, as dnsfwd keeps them

	RouteRepairs    uint64 `json:"route_repairs"`
	RouteCheckError string `json:"route_check_error,omitempty"`

	health.HealerStatus // the endpoint healer's figures, as it keeps them (the endpoint list and the clock too)

	// Health beyond the tunnel probe.
	LANPath    *health.LANPathStatus `json:"lan_path,omitempty"` // the probe from the LAN address; nil when not run
	Masquerade bool                  `json:"masquerade"`
	Portal     *PortalStatus         `json:"portal,omitempty"`   // captive portals; nil with PortalCheck = off
	Breakout   *BreakoutStatus       `json:"breakout,omitempty"` // the local breakout; nil without it

	LastError string `json:"last_error,omitempty"`
}

// ClampStatus are mssclamp's counters.
type ClampStatus struct {
	Enabled    bool   `json:"enabled"`
	ClampedOut uint64 `json:"clamped_out"` // SYNs from the LAN
	ClampedIn  uint64 `json:"clamped_in"`  // SYN-ACKs from the tunnel
	Malformed  uint64 `json:"malformed"`
}

// BuffersStatus is what wireguard-go's packet buffers went through since the start: the
// pool's size, the times a reader found every buffer in use and waited (the traffic outran the
// CPU; the packets behind waited in the kernel's queues), and the packets dropped for lack of
// room. The counters are the process's (one device a process), as in /metrics.
type BuffersStatus struct {
	Pool            int    `json:"pool"`              // the most packet buffers the device keeps
	Waits           uint64 `json:"waits"`             // a reader waited for a free buffer
	DroppedNoRoom   uint64 `json:"dropped_no_room"`   // no free buffer or queue slot where nothing can wait
	DroppedTooLarge uint64 `json:"dropped_too_large"` // larger than a packet buffer
}

// text is the status line's value.
func (b *BuffersStatus) text() string {
	return fmt.Sprintf("%d at most; %d waits for a free one (the traffic outran the CPU), %d packets dropped for lack of room, %d too large for one",
		b.Pool, b.Waits, b.DroppedNoRoom, b.DroppedTooLarge)
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
			ep += " [" + join(s.EndpointRecords, " ") + "]"
		}
	}
	clamp := "off"
	if s.Clamp.Enabled {
		clamp = fmt.Sprintf("%d out, %d in, %d malformed", s.Clamp.ClampedOut, s.Clamp.ClampedIn, s.Clamp.Malformed)
	}
	home := "yes"
	if !s.AtHome {
		home = "no: " + s.AwayReason
	}
	_, err := fmt.Fprintf(w, `interface:        %s (listening on UDP %d)
at home:          %s
tunnel:           %s
last handshake:   %s
endpoint:         %s
transfer:         %d B received, %d B sent
mss clamp:        %s
dns:              %d queries: %d ok, %d nxdomain, %d servfail, %d dropped; cache %d hits, %d misses; upstream %d timeouts, %d errors
route repairs:    %d
probes:           %d sent, %d missed now, %d missed in all; endpoint changed %d times, re-resolved %d times (%d failures)
`, s.Name, s.ListenPort, home, up, hs, ep, s.RxBytes, s.TxBytes, clamp,
		s.DNS.Queries, s.DNS.OK, s.DNS.NXDomain, s.DNS.ServFail, s.DNS.Dropped, s.DNS.CacheHits, s.DNS.CacheMisses,
		s.DNS.UpstreamTimeouts, s.DNS.UpstreamErrors,
		s.RouteRepairs, s.Probes, s.ProbeMisses, s.ProbeMissesTotal, s.EndpointChanges, s.Reresolutions, s.ResolveFailures)
	if err == nil && s.EndpointRoamResets > 0 {
		_, err = fmt.Fprintf(w, "roam resets:      %d (the peer roamed back to an endpoint left, where probes went unanswered)\n", s.EndpointRoamResets)
	}
	if err == nil && s.MTU != nil {
		_, err = fmt.Fprintf(w, "mtu:              %s\n", s.MTU.text())
	}
	if err == nil && s.Buffers != nil {
		_, err = fmt.Fprintf(w, "packet buffers:   %s\n", s.Buffers.text())
	}
	if err == nil {
		err = s.writeHealth(w)
	}
	if err == nil {
		err = s.writePortal(w)
	}
	if err == nil && s.RouteCheckError != "" {
		_, err = fmt.Fprintf(w, "route check:      %s\n", s.RouteCheckError)
	}
	if err == nil && s.LastError != "" {
		_, err = fmt.Fprintf(w, "last error:       %s\n", s.LastError)
	}
	return err
}

// writeHealth prints the endpoint list's entry, the LAN path, masquerade
// and the clock.
func (s *Status) writeHealth(w io.Writer) error {
	var b strings.Builder
	if s.EndpointEntry != "" {
		fmt.Fprintf(&b, "endpoint entry:   %s (%s); %d switches, %d tries of the first\n", s.EndpointEntry, s.EndpointEntryReason, s.EndpointEntrySwitches, s.EndpointEntryTrials)
	}
	if l := s.LANPath; l != nil {
		state := "ok"
		switch {
		case l.Probes == 0:
			state = "not probed yet"
		case !l.OK:
			state = "BROKEN: " + l.Reason
		}
		fmt.Fprintf(&b, "lan path:         %s (from %s; %d probes, %d missed)\n", state, l.Source, l.Probes, l.Misses)
	}
	fmt.Fprintf(&b, "handshake kicks:  %d (started at once when a probe found the peer silent)\n", s.HandshakeKicks)
	fmt.Fprintf(&b, "masquerade:       %s\n", onOff(s.Masquerade))
	s.Breakout.writeText(&b, s.DNS.Local)
	if c := s.Clock; c != nil {
		state := "ok"
		if !c.OK() {
			state = c.Reason
		}
		fmt.Fprintf(&b, "clock:            %s (max error %.1f s)\n", state, c.MaxError)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// status assembles the Status document.
func (g *gateway) status() *Status {
	now := time.Now()
	s := &Status{Name: g.cfg.Name, Time: now, HandshakeAgeSeconds: -1}
	if g.tun != nil {
		ps, err := g.tun.peerStats()
		if err != nil {
			s.LastError = err.Error()
		}
		s.ListenPort = ps.ListenPort
		s.LastHandshake = ps.LastHandshake
		if !ps.LastHandshake.IsZero() {
			age := now.Sub(ps.LastHandshake)
			s.HandshakeAgeSeconds = age.Seconds()
			s.TunnelUp = age < 180*time.Second
		}
		s.Endpoint = ps.Endpoint
		s.RxBytes, s.TxBytes = ps.RxBytes, ps.TxBytes
		s.MTU = g.pmtu.status()
		s.Buffers = g.tun.buffers()
		if g.tun.clamp != nil {
			cs := g.tun.clamp.Stats()
			s.Clamp = ClampStatus{Enabled: true, ClampedOut: cs.ClampedOut, ClampedIn: cs.ClampedIn, Malformed: cs.Malformed}
		}
	}
	if g.fwd != nil {
		s.DNS = g.fwd.Stats()
	}
	if g.kick != nil {
		s.HandshakeKicks = g.kick.Kicks()
	}
	if g.heal != nil {
		hs, lastErr := g.heal.Status()
		s.HealerStatus = hs
		if s.LastError == "" {
			s.LastError = lastErr
		}
	}
	if g.lan != nil {
		l := g.lan.State()
		s.LANPath = &l
	}
	s.Masquerade = g.cfg.Masquerade
	s.Portal = g.portal.status()
	s.Breakout = g.brk.status()
	s.RouteRepairs = g.repairs.Load()
	g.mu.Lock()
	s.RouteCheckError = g.repairErr
	g.mu.Unlock()
	s.AtHome, s.AwayReason = homeVerdict(s)
	return s
}

// join formats xs for a person, separated by sep.
func join[T fmt.Stringer](xs []T, sep string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = x.String()
	}
	return strings.Join(s, sep)
}
