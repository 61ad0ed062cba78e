package statuspage

import "time"

// Snapshot is everything the page shows, read at Time. It holds no secret,
// and nothing in it may: the page is served to the whole LAN.
type Snapshot struct {
	Name string    `json:"name"` // the gateway's interface, e.g. fobgw0
	Time time.Time `json:"time"` // when it was read; the page shows times in its location

	// The tunnel.
	TunnelUp      bool      `json:"tunnel_up"`               // a handshake less than 180 s old
	LastHandshake time.Time `json:"last_handshake,omitzero"` // zero: never
	Endpoint      string    `json:"endpoint"`                // address:port, "" while unresolved
	EndpointName  string    `json:"endpoint_name"`           // the DDNS name it came from, "" for a literal
	RxBytes       uint64    `json:"rx_bytes"`                // received through the tunnel
	TxBytes       uint64    `json:"tx_bytes"`                // sent through the tunnel
	// AtHome is the gateway's verdict (its Status, `fobgw status -json`):
	// the LAN reaches home through the tunnel. The page does not judge it
	// again; it shows it, and AwayReason, a sentence saying why not ("" when
	// at home).
	AtHome     bool   `json:"at_home"`
	AwayReason string `json:"away_reason"`

	DNS DNS `json:"dns"`

	KillSwitch      bool   `json:"kill_switch"`      // KillSwitch = on
	RouteRepairs    uint64 `json:"route_repairs"`    // routes, rules and sysctls put back after drift
	EndpointChanges uint64 `json:"endpoint_changes"` // times the peer was pointed at another address

	// Portal is the captive portal; nil when the gateway does not look for
	// one (PortalCheck = off).
	Portal *Portal `json:"portal,omitempty"`

	Breakout *Breakout `json:"breakout,omitempty"` // the local breakout; nil without it
}

// Breakout is what leaves through the local ISP on purpose (Bypass,
// LocalDomains).
type Breakout struct {
	Devices      []Device `json:"devices"`       // the bypassed devices
	LocalSet     int      `json:"local_set"`     // addresses of LocalDomains answers routed direct now
	LocalAnswers uint64   `json:"local_answers"` // DNS questions answered through the local ISP's resolver
}

// Device is a bypassed device.
type Device struct {
	Name  string `json:"name"`  // its address or MAC (with its addresses now)
	Seen  bool   `json:"seen"`  // it sent packets, or holds an address on the LAN
	Bytes uint64 `json:"bytes"` // counted while it was bypassed
}

// DNS are the LAN's DNS forwarder's counters.
type DNS struct {
	Answers   uint64 `json:"answers"`    // answered NOERROR or NXDOMAIN
	CacheHits uint64 `json:"cache_hits"` // of those and others, answered from the cache
	Failures  uint64 `json:"failures"`   // answered SERVFAIL, or not answered at all
}

// Holding reports whether the kill switch is holding the LAN back: it is
// on and the LAN is not at home, so the LAN's traffic waits for the tunnel
// instead of leaving through the local ISP.
func (s *Snapshot) Holding() bool { return s.KillSwitch && !s.AtHome }
