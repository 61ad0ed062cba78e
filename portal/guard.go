package portal

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// The Guard's refusals. None is fatal: the answer to the request is a refusal
// (403, or 405 for ErrMethod) and nothing opens.
var (
	ErrMethod    = errors.New("not a POST")
	ErrHost      = errors.New("the request names a host the page is not served as") // DNS rebinding
	ErrCrossSite = errors.New("the request comes from another site")
	ErrToken     = errors.New("no valid token from the page")
	ErrNotLAN    = errors.New("the requester is not on the LAN")
)

const (
	// TokenField is the form field that carries the page's token.
	TokenField = "token"
	// TokenPeriod is how long a token is made for: one from the previous
	// period is still good, so a token lives one to two periods.
	TokenPeriod = 10 * time.Minute
	// maxForm bounds the form's body.
	maxForm = 4 << 10
	// tokenLabel separates these MACs from any other use of the secret.
	tokenLabel = "fobgw portal window v1\x00"
)

// GuardConfig is what a Guard needs, given at construction.
type GuardConfig struct {
	// LAN is where a requester must be: the window is for LAN devices.
	LAN []netip.Prefix
	// Hosts are the names the page may be reached by (the Host header),
	// besides an IP address; a page reached by another name is refused, so
	// that a site whose name is made to resolve to the gateway (DNS
	// rebinding) cannot read a token and press the button as itself.
	Hosts []string
	// Secret keys the tokens; nil: 32 random bytes, new each process.
	Secret []byte
}

// Guard decides whether a POST from the status page may open the window for
// the device that sends it: the page's button, "log in to this network from
// this device". The page puts Token into its form (field TokenField); Allow
// checks the POST.
type Guard struct {
	lan    []netip.Prefix
	hosts  map[string]bool
	secret []byte
}

// NewGuard returns a Guard; the error is only crypto/rand's.
func NewGuard(cfg GuardConfig) (*Guard, error) {
	g := &Guard{lan: cfg.LAN, hosts: map[string]bool{}, secret: cfg.Secret}
	for _, h := range cfg.Hosts {
		g.hosts[strings.ToLower(h)] = true
	}
	if g.secret == nil {
		g.secret = make([]byte, 32)
		if _, err := rand.Read(g.secret); err != nil {
			return nil, fmt.Errorf("portal guard secret: %w", err)
		}
	}
	return g, nil
}

// Token is the token the page gives requester r at now, for its form; "" for
// a requester that Allow would refuse whatever it sends (not on the LAN).
func (g *Guard) Token(now time.Time, r *http.Request) string {
	a, err := g.requester(r)
	if err != nil {
		return ""
	}
	return g.token(a, bucket(now))
}

// Allow decides whether r, a POST of the page's form, may open the window
// for the device that sends it, and names that device: r's remote address
// (never a form field). It is allowed when
//   - it is a POST to the page as reached by an IP address or one of Hosts;
//   - Sec-Fetch-Site, when the browser sends it, is "same-origin", and
//     Origin, when sent, is the page's own (scheme and host as requested);
//     a browser that sends neither is judged by the token alone;
//   - the form carries a token that Token gave the same address in this
//     TokenPeriod or the one before;
//   - the requester is inside LAN.
//
// The error is one of ErrMethod, ErrHost, ErrCrossSite, ErrToken, ErrNotLAN
// (errors.Is), with detail.
func (g *Guard) Allow(now time.Time, r *http.Request) (Device, error) {
	if r.Method != http.MethodPost {
		return Device{}, fmt.Errorf("%w: %s", ErrMethod, r.Method)
	}
	if !g.hostOK(r.Host) {
		return Device{}, fmt.Errorf("%w: %q", ErrHost, r.Host)
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return Device{}, fmt.Errorf("%w: Sec-Fetch-Site %q", ErrCrossSite, site)
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Scheme != scheme(r) || !strings.EqualFold(u.Host, r.Host) {
			return Device{}, fmt.Errorf("%w: Origin %q, the page is %s://%s", ErrCrossSite, origin, scheme(r), r.Host)
		}
	}
	a, err := g.requester(r)
	if err != nil {
		return Device{}, err
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return Device{}, fmt.Errorf("%w: the form: %v", ErrToken, err)
	}
	tok := r.PostForm.Get(TokenField)
	b := bucket(now)
	if tok == "" || !(g.tokenOK(tok, a, b) || g.tokenOK(tok, a, b-1)) {
		return Device{}, ErrToken
	}
	return DeviceAddr(a), nil
}

func (g *Guard) requester(r *http.Request) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: remote address %q", ErrNotLAN, r.RemoteAddr)
	}
	a := ap.Addr().Unmap().WithZone("")
	for _, p := range g.lan {
		if p.Contains(a) {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: %v is outside LAN (%s)", ErrNotLAN, a, joinPrefixes(g.lan))
}

func (g *Guard) hostOK(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return h != "" && g.hosts[strings.ToLower(h)]
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func bucket(now time.Time) int64 { return now.Unix() / int64(TokenPeriod/time.Second) }

func (g *Guard) token(a netip.Addr, b int64) string {
	m := hmac.New(sha256.New, g.secret)
	m.Write([]byte(tokenLabel))
	ab := a.As16()
	m.Write(ab[:])
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(b)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (g *Guard) tokenOK(tok string, a netip.Addr, b int64) bool {
	return hmac.Equal([]byte(tok), []byte(g.token(a, b)))
}
