package dnsfwd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/fobgw/fobgw/internal/tunsock"
	"github.com/miekg/dns"
)

// ErrUpstreamIgnores is wrapped by Probe's error when the upstream refused or ignored the gateway's
// query. It is not fatal: the tunnel may still be coming up, but the most likely cause is the home
// resolver's access setting, which the error text names.
var ErrUpstreamIgnores = errors.New("upstream resolver refused or ignored the query")

// piholeHint names the setting that makes a Pi-hole ignore queries arriving through the tunnel.
const piholeHint = `if the upstream is a Pi-hole, its "Allow only local requests" setting ignores queries ` +
	`from the tunnel's subnet: choose "Permit all origins" in Settings > DNS > Interface settings ` +
	`(and make sure the home router does not firewall the tunnel from it)`

// Probe asks the upstream for the root's NS records through the tunnel (tunsock.Probe), from a socket
// bound like those of forwarded queries (so it bypasses the cache), and reports whether it answers.
// It works before or after Start. The deadline is ctx's, or Timeout if ctx has none. On refusal or silence the error wraps
// ErrUpstreamIgnores and names Pi-hole's setting; the caller logs it.
func (f *Forwarder) Probe(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.cfg.Timeout)
		defer cancel()
	}
	up := f.cfg.Upstream
	c, err := f.dial(ctx, "udp", up.String())
	if err != nil {
		return fmt.Errorf("dnsfwd: probe upstream %s: %w", up, err)
	}
	defer c.Close()
	r, err := tunsock.Probe(ctx, c)
	if err != nil {
		return f.probeError(err)
	}
	switch r.Rcode {
	case dns.RcodeRefused:
		return fmt.Errorf("dnsfwd: probe upstream %s through %q: answered REFUSED: %w; %s", up, f.cfg.Interface, ErrUpstreamIgnores, piholeHint)
	case dns.RcodeServerFailure:
		return fmt.Errorf("dnsfwd: probe upstream %s through %q: answered SERVFAIL: the home resolver is reachable but cannot resolve (is its own upstream reachable?)", up, f.cfg.Interface)
	}
	return nil
}

func (f *Forwarder) probeError(err error) error {
	up := f.cfg.Upstream
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("dnsfwd: probe upstream %s through %q: no answer: %w; check the tunnel is up (wg show), then: %s", up, f.cfg.Interface, ErrUpstreamIgnores, piholeHint)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("dnsfwd: probe upstream %s through %q: port %d closed (ICMP port unreachable): %w: %w; is a DNS server running there? %s", up, f.cfg.Interface, up.Port(), ErrUpstreamIgnores, err, piholeHint)
	}
	return fmt.Errorf("dnsfwd: probe upstream %s through %q: %w", up, f.cfg.Interface, err)
}
