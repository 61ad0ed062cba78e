package gateway

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fobgw/fobgw/masq"
	"github.com/fobgw/fobgw/portal"
	"github.com/fobgw/fobgw/statuspage"
)

// fakeMarks records what the window marks: masq's device windows and the
// forwarder's clients, each with its end as now()+duration.
type fakeMarks struct {
	mu      sync.Mutex
	devices map[string]time.Time
	clients map[netip.Addr]time.Time
	calls   []string
	fail    error // returned by AllowDevice when set
}

func newFakeMarks() *fakeMarks {
	return &fakeMarks{devices: map[string]time.Time{}, clients: map[netip.Addr]time.Time{}}
}

func (f *fakeMarks) AllowDevice(d masq.Device, dur time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.devices[d.String()] = time.Now().Add(dur)
	f.calls = append(f.calls, "allow "+d.String())
	return nil
}

func (f *fakeMarks) RevokeDevice(d masq.Device) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.devices, d.String())
	f.calls = append(f.calls, "revoke "+d.String())
	return nil
}

func (f *fakeMarks) AllowClient(a netip.Addr, dur time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if dur <= 0 {
		delete(f.clients, a)
	} else {
		f.clients[a] = time.Now().Add(dur)
	}
	return nil
}

func (f *fakeMarks) marked() (devices []string, clients []netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for d := range f.devices {
		devices = append(devices, d)
	}
	for a := range f.clients {
		clients = append(clients, a)
	}
	slices.Sort(devices)
	slices.SortFunc(clients, netip.Addr.Compare)
	return devices, clients
}

// testCaptive is the captive-portal part of the story's gateway with fakes:
// the check answers res, the handshake is *hs.
type testCaptive struct {
	*captive
	marks *fakeMarks
	mu    sync.Mutex
	hs    time.Time
	res   portal.Result
}

func newTestCaptive(t *testing.T, res portal.Result) *testCaptive {
	t.Helper()
	tc := &testCaptive{marks: newFakeMarks(), res: res}
	neigh := func(lanIf string, mac net.HardwareAddr) ([]netip.Addr, error) {
		if lanIf != "br0" || mac.String() != "02:11:22:33:44:55" {
			return nil, nil
		}
		// One inside LAN, one outside it (ignored), as a neighbour table may hold.
		return []netip.Addr{netip.MustParseAddr("192.168.86.77"), netip.MustParseAddr("2001:db8::77")}, nil
	}
	c, err := buildCaptive(mustParse(t, baseConfig), captiveDeps{
		detect: func(context.Context) portal.Result {
			tc.mu.Lock()
			defer tc.mu.Unlock()
			r := tc.res
			r.At = time.Now()
			return r
		},
		nat: tc.marks, fwd: tc.marks, neigh: neigh,
		handshake: func() time.Time { tc.mu.Lock(); defer tc.mu.Unlock(); return tc.hs },
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	tc.captive = c
	return tc
}

func (tc *testCaptive) handshakeNow() {
	tc.mu.Lock()
	tc.hs = time.Now()
	tc.mu.Unlock()
}

var portalFound = portal.Result{State: portal.Portal, URL: "http://portal.example/login", Status: 302}

// TestPortalWindowRequests: the control socket's requests open and close the
// window as the owner asks, refuse what they must with a reason, and the
// window closes by itself at the first handshake after it opened, then at
// its end.
func TestPortalWindowRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCaptive(t, portalFound)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); tc.run(ctx) }()
		synctest.Wait() // the first check
		if ws, ok := tc.detected(); !ok || ws.URL != portalFound.URL {
			t.Fatalf("detected %+v, %v; want the portal", ws, ok)
		}

		for _, tt := range []struct {
			name string
			req  Request
			want string
		}{
			{"outside the LAN", Request{Op: OpPortalOpen, Device: "192.168.2.50"}, "not inside LAN"},
			{"the network address", Request{Op: OpPortalOpen, Device: "192.168.86.0"}, "network address"},
			{"too long", Request{Op: OpPortalOpen, Device: "192.168.86.254", For: 31 * time.Minute}, "longer than 30m0s"},
			{"a broadcast MAC", Request{Op: OpPortalOpen, Device: "ff:ff:ff:ff:ff:ff"}, "LAN device"},
		} {
			r := tc.request(tt.req)
			if r.Done || !strings.Contains(r.Error, tt.want) {
				t.Errorf("%s: %+v; want refused with %q", tt.name, r, tt.want)
			}
		}
		if d, _ := tc.marks.marked(); len(d) != 0 {
			t.Fatalf("refused requests marked %v", d)
		}

		r := tc.request(Request{Op: OpPortalOpen, Device: "192.168.86.254", For: 5 * time.Minute})
		if r.Error != "" || !r.Done || !r.Window.Open || !r.Detected || r.URL != portalFound.URL {
			t.Fatalf("open: %+v", r)
		}
		if d, c := tc.marks.marked(); !slices.Equal(d, []string{"192.168.86.254"}) || len(c) != 1 || c[0] != netip.MustParseAddr("192.168.86.254") {
			t.Fatalf("marked %v, DNS %v; want the device in both", d, c)
		}
		if r := tc.request(Request{Op: OpPortalOpen, Device: "192.168.86.50"}); !strings.Contains(r.Error, portal.ErrBusy.Error()) || r.Window.Device.String() != "192.168.86.254" {
			t.Errorf("a second device: %+v; want busy, naming the first", r)
		}

		// Renewed every second while open, not past the end.
		time.Sleep(3 * time.Second)
		tc.marks.mu.Lock()
		renewals := strings.Count(strings.Join(tc.marks.calls, "\n"), "allow 192.168.86.254")
		tc.marks.mu.Unlock()
		if renewals < 3 {
			t.Errorf("%d marks in 3 s; want the window renewed each second", renewals)
		}

		// The login: a handshake. The window closes within a second.
		tc.handshakeNow()
		time.Sleep(observeEvery)
		synctest.Wait()
		st := tc.status()
		if st.Window.Open || st.Window.Reason != portal.ClosedByHandshake || st.Windows.ClosedByHandshake != 1 {
			t.Fatalf("after a handshake: %+v", st)
		}
		if d, c := tc.marks.marked(); len(d)+len(c) != 0 {
			t.Errorf("after the close still marked %v, DNS %v", d, c)
		}

		// By MAC: its LAN addresses from the neighbour table get Resolver.
		// Nobody logs in: it ends at its time.
		r = tc.request(Request{Op: OpPortalOpen, Device: "02:11:22:33:44:55", For: 20 * time.Second})
		if r.Error != "" || !r.Done {
			t.Fatalf("open by MAC: %+v", r)
		}
		if d, c := tc.marks.marked(); !slices.Equal(d, []string{"02:11:22:33:44:55"}) || !slices.Equal(c, []netip.Addr{netip.MustParseAddr("192.168.86.77")}) {
			t.Errorf("by MAC: marked %v, DNS %v; want the MAC and its LAN address", d, c)
		}
		time.Sleep(20*time.Second + observeEvery)
		synctest.Wait()
		st = tc.status()
		if st.Window.Open || st.Window.Reason != portal.ClosedByTimeout || st.Windows.ClosedByTimeout != 1 {
			t.Fatalf("after its time: %+v", st)
		}
		if d, c := tc.marks.marked(); len(d)+len(c) != 0 {
			t.Errorf("after its time still marked %v, DNS %v", d, c)
		}

		// The owner's close, then a close with none open.
		if r := tc.request(Request{Op: OpPortalOpen, Device: "192.168.86.254"}); !r.Done {
			t.Fatalf("open: %+v", r)
		}
		if r := tc.request(Request{Op: OpPortalClose}); !r.Done || r.Error != "" || r.Window.Reason != portal.ClosedByOwner {
			t.Errorf("close: %+v", r)
		}
		if r := tc.request(Request{Op: OpPortalClose}); r.Done || r.Error != "" {
			t.Errorf("close with none open: %+v", r)
		}

		// A window open at stop is closed.
		if r := tc.request(Request{Op: OpPortalOpen, Device: "192.168.86.254"}); !r.Done {
			t.Fatalf("open: %+v", r)
		}
		cancel()
		<-done
		if st := tc.status(); st.Window.Open || st.Windows.Opened != 4 || st.Windows.ClosedByOwner != 2 {
			t.Errorf("after stop: %+v", st)
		}
		if d, _ := tc.marks.marked(); len(d) != 0 {
			t.Errorf("after stop still marked %v", d)
		}
	})
}

// TestPortalMarkFails: when the table refuses the mark, nothing is open.
func TestPortalMarkFails(t *testing.T) {
	tc := newTestCaptive(t, portalFound)
	tc.marks.fail = errors.New("nftables: no breakout")
	r := tc.request(Request{Op: OpPortalOpen, Device: "192.168.86.254"})
	if r.Done || !strings.Contains(r.Error, "no breakout") || tc.status().Window.Open {
		t.Errorf("open with a failing mark: %+v", r)
	}
	if _, c := tc.marks.marked(); len(c) != 0 {
		t.Errorf("DNS marked %v without the device's mark", c)
	}
}

// TestPortalControlSocket: the requests travel over the control socket, a
// client that sends nothing still gets the status (the first protocol), and
// without the portal part the requests are refused with the reason.
func TestPortalControlSocket(t *testing.T) {
	tc := newTestCaptive(t, portalFound)
	path := ControlSocket(filepath.Join(t.TempDir(), "run"), "fgwtest0")
	want := &Status{Name: "fgwtest0", HandshakeAgeSeconds: -1}
	srv, err := listenControl(path, controlHandler{status: func() *Status { return want }, portal: tc.request}, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.close)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := PortalOpen(ctx, path, "192.168.2.9", 0); err == nil || !strings.Contains(err.Error(), "not inside LAN") {
		t.Errorf("open outside the LAN: %v", err)
	}
	r, err := PortalOpen(ctx, path, "192.168.86.254", 2*time.Minute)
	if err != nil || !r.Window.Open || r.Window.Until.Sub(r.Window.Opened) != 2*time.Minute {
		t.Fatalf("open: %+v, %v", r, err)
	}
	if r, err := PortalClose(ctx, path); err != nil || !r.Done {
		t.Errorf("close: %+v, %v", r, err)
	}

	// The first protocol: connect and read.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(c); err != nil || !strings.Contains(buf.String(), `"name":"fgwtest0"`) {
		t.Errorf("a client that sends nothing got %q, %v; want the status", buf.String(), err)
	}

	off := ControlSocket(filepath.Join(t.TempDir(), "run"), "fgwtest1")
	srv2, err := listenControl(off, controlHandler{status: func() *Status { return want }}, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv2.close)
	if _, err := PortalOpen(ctx, off, "192.168.86.254", 0); err == nil || !strings.Contains(err.Error(), "PortalCheck = off") {
		t.Errorf("open with PortalCheck off: %v", err)
	}
}

// TestPortalStatus: status text, metrics, the verdict and the page say
// "captive portal" with its URL, and the window.
func TestPortalStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCaptive(t, portalFound)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go tc.run(ctx)
		synctest.Wait()
		if r := tc.request(Request{Op: OpPortalOpen, Device: "192.168.86.254"}); !r.Done {
			t.Fatalf("open: %+v", r)
		}
		s := &Status{Name: "fobgw0", Time: time.Now(), HandshakeAgeSeconds: -1, Portal: tc.status()}
		s.AtHome, s.AwayReason = homeVerdict(s)
		if s.AtHome || !strings.Contains(s.AwayReason, "captive portal") || !strings.Contains(s.AwayReason, portalFound.URL) || !strings.Contains(s.AwayReason, "192.168.86.254") {
			t.Errorf("verdict %v %q", s.AtHome, s.AwayReason)
		}
		var b strings.Builder
		if err := s.writePortal(&b); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"captive portal:   DETECTED: " + portalFound.URL, "portal window:    OPEN for 192.168.86.254", "1 opened"} {
			if !strings.Contains(b.String(), want) {
				t.Errorf("status text lacks %q:\n%s", want, b.String())
			}
		}
		values := map[string]float64{}
		for _, d := range metricDefs {
			values[d.name] = d.value(s)
		}
		for name, want := range map[string]float64{"fobgw_captive_portal": 1, "fobgw_portal_window_open": 1, "fobgw_portal_windows_opened_total": 1, "fobgw_portal_checks_total": 1} {
			if values[name] != want {
				t.Errorf("%s = %v, want %v", name, values[name], want)
			}
		}
		p := pagePortal(s.Portal)
		if !p.Detected || p.URL != portalFound.URL || !p.Window || p.Device != "192.168.86.254" {
			t.Errorf("page %+v", p)
		}
	})
}

// TestPortalPageButton: the page shows the button while a portal is
// detected; its POST opens the window for the device that sends it, and a
// POST from another site, or without the page's token, opens nothing.
func TestPortalPageButton(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCaptive(t, portalFound)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go tc.run(ctx)
		synctest.Wait()
		snap := func() statuspage.Snapshot {
			return statuspage.Snapshot{Name: "fobgw0", Time: time.Now(), KillSwitch: true, Portal: pagePortal(tc.status())}
		}
		page := statuspage.NewPage(snap, statuspage.NewSampler(0), nil, pageLogin{tc.captive})
		const host, client = "192.168.86.1", "192.168.86.254:50000"
		get := httptest.NewRequest("GET", "http://"+host+"/", nil)
		get.RemoteAddr = client
		rec := httptest.NewRecorder()
		page.ServeHTTP(rec, get)
		m := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(rec.Body.String())
		if m == nil || !strings.Contains(rec.Body.String(), `id="portal-login"`) {
			t.Fatalf("no button on the page:\n%s", rec.Body.String())
		}
		post := func(token string, header map[string]string) *httptest.ResponseRecorder {
			r := httptest.NewRequest("POST", "http://"+host+statuspage.LoginPath, strings.NewReader(url.Values{"token": {token}}.Encode()))
			r.RemoteAddr = client
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range header {
				if k == "Host" {
					r.Host = v
					continue
				}
				r.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			page.ServeHTTP(rec, r)
			return rec
		}
		for name, h := range map[string]map[string]string{
			"cross-site":    {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
			"other origin":  {"Origin": "http://evil.example"},
			"rebound name":  {"Host": "evil.example"},
			"same-site tab": {"Sec-Fetch-Site": "same-site"},
		} {
			rec := post(m[1], h)
			if rec.Code != http.StatusForbidden || tc.status().Window.Open {
				t.Errorf("%s: %d, window %+v; want 403 and nothing open", name, rec.Code, tc.status().Window)
			}
		}
		if rec := post("forged", nil); rec.Code != http.StatusForbidden || tc.status().Window.Open {
			t.Errorf("a forged token: %d; want 403 and nothing open", rec.Code)
		}
		rec = post(m[1], map[string]string{"Origin": "http://" + host, "Sec-Fetch-Site": "same-origin"})
		if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/" {
			t.Fatalf("the button: %d %q; want 303 to /", rec.Code, rec.Header().Get("Location"))
		}
		st := tc.status().Window
		if !st.Open || st.Device.String() != "192.168.86.254" || st.By != "page" {
			t.Fatalf("after the button: %+v", st)
		}
		rec = httptest.NewRecorder()
		page.ServeHTTP(rec, get)
		if body := rec.Body.String(); !strings.Contains(body, `id="portal-window"`) || strings.Contains(body, `id="portal-login"`) {
			t.Errorf("with the window open the page shows:\n%s", body)
		}
	})
}
