// Package statuspage serves the gateway's status page on the LAN: the
// answer to "am I at home right now, and since when?" for anyone on the
// LAN with a phone, without SSH.
//
// The page is HTML rendered on the server, with its CSS inline and no
// script (Content-Security-Policy forbids any); it reloads itself every
// RefreshInterval with a meta refresh and fits a phone's screen. It shows:
// at home or not, as the gateway judged it (its Status: at_home and
// away_reason, the reason shown when away), and since when; the tunnel (handshake age, the home router's address and
// DDNS name, bytes in and out); the DNS forwarder's answers, cache hits and
// failures; the kill switch (on, off, holding the LAN back); repairs; and
// the throughput in and out over the last 15 minutes as an SVG chart drawn
// from a Sampler, a fixed ring of counter readings taken every
// DefaultInterval. /status.json serves the same Snapshot as JSON.
//
// The page is read-only (GET and HEAD; anything else is 405) but for the
// captive portal's button: while Snapshot.Portal is detected and a Login is
// given, a form whose POST to LoginPath the Login judges and answers (the
// window for the device that sends it). It holds no secret: a Snapshot has
// no field for a key. Names from the configuration and from DNS, and the
// portal's URL from the network, are escaped (html/template). The caller chooses the address:
// fobgw serves it only on a LAN address (StatusListen), never on the WAN.
//
// The gateway fills a Snapshot from its status and serves the page with
// Listen, which also runs the sampler:
//
//	srv, err := statuspage.Listen(cfg.StatusListen, snapshot, statuspage.Options{Logger: log})
//	...
//	defer srv.Close()
package statuspage
