package portal

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	pageHost = "192.168.86.1:8080" // StatusListen
	client   = "192.168.86.254"
)

func newTestGuard(t *testing.T) *Guard {
	t.Helper()
	g, err := NewGuard(GuardConfig{LAN: testLAN, Hosts: []string{"fob.lan"}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// post is the page's form as a browser sends it.
func post(remote, host string, form url.Values, hdr map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "http://"+host+"/portal/open", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = net.JoinHostPort(remote, "51000")
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return r
}

// tokenFor is the token the page gives remote at now.
func tokenFor(g *Guard, now time.Time, remote string) string {
	r := httptest.NewRequest(http.MethodGet, "http://"+pageHost+"/", nil)
	r.RemoteAddr = net.JoinHostPort(remote, "51000")
	return g.Token(now, r)
}

func TestGuard(t *testing.T) {
	g := newTestGuard(t)
	now := t0
	tok := tokenFor(g, now, client)
	if tok == "" {
		t.Fatal("no token for a LAN client")
	}
	good := url.Values{TokenField: {tok}}
	sameOrigin := map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://" + pageHost}

	for _, tc := range []struct {
		name string
		r    *http.Request
		at   time.Time
		err  error // nil: allowed
	}{
		{"the page's form from a current browser", post(client, pageHost, good, sameOrigin), now, nil},
		{"Sec-Fetch-Site alone", post(client, pageHost, good, map[string]string{"Sec-Fetch-Site": "same-origin"}), now, nil},
		{"Origin alone", post(client, pageHost, good, map[string]string{"Origin": "http://" + pageHost}), now, nil},
		{"an old browser: neither, with the token", post(client, pageHost, good, nil), now, nil},
		{"the page by its name", post(client, "fob.lan:8080", good, map[string]string{"Origin": "http://fob.lan:8080"}), now, nil},
		{"a token from the period before", post(client, pageHost, good, sameOrigin), now.Add(TokenPeriod), nil},
		{"an IPv6 client", post("fd00:86::50", "[fd00:86::1]:8080", url.Values{TokenField: {tokenFor(g, now, "fd00:86::50")}}, nil), now, nil},

		{"cross-site", post(client, pageHost, good, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}), now, ErrCrossSite},
		{"same-site is not same-origin", post(client, pageHost, good, map[string]string{"Sec-Fetch-Site": "same-site"}), now, ErrCrossSite},
		{"typed by hand (none)", post(client, pageHost, good, map[string]string{"Sec-Fetch-Site": "none"}), now, ErrCrossSite},
		{"another origin, no Sec-Fetch-Site", post(client, pageHost, good, map[string]string{"Origin": "http://evil.example"}), now, ErrCrossSite},
		{"the same host, another port", post(client, pageHost, good, map[string]string{"Origin": "http://192.168.86.1:9636"}), now, ErrCrossSite},
		{"https origin for an http page", post(client, pageHost, good, map[string]string{"Origin": "https://" + pageHost}), now, ErrCrossSite},
		{"a sandboxed frame (Origin null)", post(client, pageHost, good, map[string]string{"Origin": "null"}), now, ErrCrossSite},
		{"same-origin but Origin elsewhere", post(client, pageHost, good, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"}), now, ErrCrossSite},
		{"DNS rebinding: a name the page is not", post(client, "evil.example", good, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"}), now, ErrHost},
		{"no token", post(client, pageHost, nil, sameOrigin), now, ErrToken},
		{"a forged token", post(client, pageHost, url.Values{TokenField: {strings.Repeat("A", 43)}}, sameOrigin), now, ErrToken},
		{"another device's token", post(client, pageHost, url.Values{TokenField: {tokenFor(g, now, "192.168.86.23")}}, sameOrigin), now, ErrToken},
		{"an expired token", post(client, pageHost, good, sameOrigin), now.Add(2 * TokenPeriod), ErrToken},
		{"a token in the query, not the form", func() *http.Request {
			r := post(client, pageHost, nil, sameOrigin)
			r.URL.RawQuery = url.Values{TokenField: {tok}}.Encode()
			return r
		}(), now, ErrToken},
		{"a form too large", post(client, pageHost, url.Values{TokenField: {tok}, "pad": {strings.Repeat("x", 8<<10)}}, sameOrigin), now, ErrToken},
		{"not on the LAN", post("192.0.2.7", pageHost, good, sameOrigin), now, ErrNotLAN},
		{"GET", httptest.NewRequest(http.MethodGet, "http://"+pageHost+"/portal/open?token="+tok, nil), now, ErrMethod},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := g.Allow(tc.at, tc.r)
			if tc.err == nil {
				if err != nil {
					t.Fatalf("Allow: %v", err)
				}
				if want := DeviceAddr(netip.MustParseAddrPort(tc.r.RemoteAddr).Addr()); d != want {
					t.Fatalf("device %v, want the requester %s", d, tc.r.RemoteAddr)
				}
				return
			}
			if !errors.Is(err, tc.err) || !d.IsZero() {
				t.Fatalf("Allow = %v, %v; want %v", d, err, tc.err)
			}
		})
	}
}

// The device is whoever sends the form, never what the form names.
func TestGuardDeviceIsTheRequester(t *testing.T) {
	g := newTestGuard(t)
	form := url.Values{TokenField: {tokenFor(g, t0, client)}, "device": {"192.168.86.23"}, "mac": {"02:11:22:33:44:55"}}
	d, err := g.Allow(t0, post(client, pageHost, form, nil))
	if err != nil || d != DeviceAddr(mustAddr(client)) {
		t.Fatalf("Allow = %v, %v; want the requester %s", d, err, client)
	}
}

func TestGuardTokenOutsideLAN(t *testing.T) {
	g := newTestGuard(t)
	if tok := tokenFor(g, t0, "127.0.0.1"); tok != "" {
		t.Fatalf("a token for loopback: %q", tok)
	}
	// Two processes' secrets make different tokens.
	g2 := newTestGuard(t)
	if tokenFor(g, t0, client) == tokenFor(g2, t0, client) {
		t.Fatal("two guards give the same token")
	}
}

// A page elsewhere on the web makes a LAN browser post the form (it cannot
// read the page's token, and the browser says where the post comes from):
// nothing opens. The page's own form opens the window for its sender.
func TestGuardCrossSitePostOpensNothing(t *testing.T) {
	g := newTestGuard(t)
	m := newFakeMarker()
	w := NewWindow(m, nil)
	now := t0
	// The button's handler as the status page will have it.
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		d, err := g.Allow(now, r)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusForbidden)
			return
		}
		if _, err := w.Open(now, d, DefaultWindow, "page", hsOld); err != nil {
			http.Error(rw, err.Error(), http.StatusConflict)
			return
		}
		http.Redirect(rw, r, "/", http.StatusSeeOther)
	})

	evil := post(client, pageHost, url.Values{TokenField: {"guessed"}}, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, evil)
	if rec.Code != http.StatusForbidden || w.State().Open || len(m.calls) != 0 {
		body, _ := io.ReadAll(rec.Body)
		t.Fatalf("cross-site POST: %d %s; window %+v, marker %v", rec.Code, body, w.State(), m.calls)
	}
	// An old browser without the headers, without the page's token.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, post(client, pageHost, url.Values{}, nil))
	if rec.Code != http.StatusForbidden || w.State().Open {
		t.Fatalf("POST without token: %d; window %+v", rec.Code, w.State())
	}

	own := post(client, pageHost, url.Values{TokenField: {tokenFor(g, now, client)}}, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://" + pageHost})
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, own)
	if rec.Code != http.StatusSeeOther || !w.State().Open || w.State().Device.String() != client {
		t.Fatalf("the page's own POST: %d; window %+v", rec.Code, w.State())
	}
	if fmt.Sprint(m.calls) != "[mark "+client+"]" {
		t.Fatalf("marker calls %v", m.calls)
	}
}
