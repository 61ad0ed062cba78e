package statuspage

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeLogin gives token and records the POSTs Open saw; refuse makes Open fail.
type fakeLogin struct {
	token  string
	refuse error
	opened int
}

func (f *fakeLogin) Token(*http.Request) string { return f.token }
func (f *fakeLogin) Open(*http.Request) error {
	if f.refuse != nil {
		return f.refuse
	}
	f.opened++
	return nil
}

func portalSnapshot(window bool) Snapshot {
	s := home()
	s.AtHome, s.TunnelUp, s.AwayReason = false, false, "A captive portal wants a login."
	s.Portal = &Portal{Detected: true, URL: `http://portal.example/login?a=1&b="x"`, Since: s.Time.Add(-time.Minute)}
	if window {
		s.Portal.Window, s.Portal.Device, s.Portal.Until = true, "192.168.86.254", s.Time.Add(9*time.Minute)
	}
	return s
}

func TestPortalButton(t *testing.T) {
	for _, tt := range []struct {
		name       string
		snap       Snapshot
		login      *fakeLogin
		wantButton bool
		wantText   []string
	}{
		{"detected", portalSnapshot(false), &fakeLogin{token: "tok-1"}, true, []string{`id="portal-url" href="http://portal.example/login?a=1&amp;b=%22x%22"`, `name="token" value="tok-1"`, `action="/portal/open"`}},
		{"no token for this requester", portalSnapshot(false), &fakeLogin{}, false, []string{`id="portal-state"`}},
		{"window open", portalSnapshot(true), &fakeLogin{token: "tok-1"}, false, []string{`id="portal-window">open for 192.168.86.254 until 16:24`, "the rest of the LAN stays behind the kill switch"}},
		{"no portal", home(), &fakeLogin{token: "tok-1"}, false, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPage(func() Snapshot { return tt.snap }, NewSampler(0), nil, tt.login)
			page := body(t, get(t, p, "GET", "/"))
			if got := strings.Contains(page, `id="portal-login"`); got != tt.wantButton {
				t.Errorf("button shown %v, want %v", got, tt.wantButton)
			}
			for _, w := range tt.wantText {
				if !strings.Contains(page, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			if tt.snap.Portal == nil && strings.Contains(page, `id="portal"`) {
				t.Errorf("a portal section without a portal")
			}
		})
	}
}

func TestPortalButtonPost(t *testing.T) {
	l := &fakeLogin{token: "tok"}
	p := NewPage(func() Snapshot { return portalSnapshot(false) }, NewSampler(0), nil, l)
	r := get(t, p, "POST", LoginPath)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" || l.opened != 1 {
		t.Errorf("POST: %s to %q, opened %d; want 303 to /", r.Status, r.Header.Get("Location"), l.opened)
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self'") {
		t.Errorf("CSP %q: forms must post only to the page", csp)
	}
	// no-referrer would make a browser send "Origin: null" with the form.
	if rp := r.Header.Get("Referrer-Policy"); rp != "same-origin" {
		t.Errorf("Referrer-Policy %q, want same-origin", rp)
	}
	l.refuse = errors.New("the request comes from another site")
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest("POST", LoginPath, nil))
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "another site") || l.opened != 1 {
		t.Errorf("refused POST: %d %q, opened %d; want 403 with the reason", rec.Code, rec.Body.String(), l.opened)
	}
	if r := get(t, p, "GET", LoginPath); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %s, want 405", LoginPath, r.Status)
	}
	none := NewPage(func() Snapshot { return portalSnapshot(false) }, NewSampler(0), nil, nil)
	if r := get(t, none, "POST", LoginPath); r.StatusCode != http.StatusNotFound {
		t.Errorf("POST without a Login: %s, want 404", r.Status)
	}
}
