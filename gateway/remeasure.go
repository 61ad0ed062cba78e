package gateway

import (
	"github.com/fobgw/fobgw/health"
)

// remeasure is the one place that decides when the path MTU is measured
// again, each time with a full search round: when the peer is pointed at an
// endpoint (a new endpoint may be a new path; the first one also lets the
// Searcher start), when the tunnel's probes stop being answered and when
// they are answered again (a failed handshake, and the tunnel's return, may
// mean a new path), and when the underlay changes (a link's MTU, a link up,
// a default route: watchUnderlay). The Searcher's own periodic rounds come
// on top.
type remeasure struct {
	mtu    measurer
	missed bool // the last probe missed; only the healer's goroutine observes
}

// measurer is the part of pathMTU that remeasure drives.
type measurer interface {
	endpointSet() // the peer has an endpoint: the Searcher may start
	trigger()     // a full search round soon; never blocks
}

func newRemeasure(mtu measurer) *remeasure { return &remeasure{mtu: mtu} }

// observe is the healer's subscriber; it never blocks.
func (r *remeasure) observe(e health.Event) {
	switch e {
	case health.EndpointSet:
		r.mtu.endpointSet()
		r.mtu.trigger()
	case health.ProbeAnswered, health.ProbeMissed:
		if missed := e == health.ProbeMissed; missed != r.missed {
			r.missed = missed
			r.mtu.trigger()
		}
	}
}

// underlayChanged is the underlay watch's news; it never blocks.
func (r *remeasure) underlayChanged() { r.mtu.trigger() }
