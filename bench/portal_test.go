package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Captive portals (issue 21) in the lab: the local ISP (net) intercepts
// every HTTP request from the FOB's WAN address with its login page
// (labportal) and drops everything else from it, UDP home included, until
// the page's form is sent (lab.sh portal-on).

// portalStatus is the part of `fobgw status -json` about the portal.
type portalStatus struct {
	AtHome     bool   `json:"at_home"`
	AwayReason string `json:"away_reason"`
	Portal     *struct {
		State  string `json:"state"`
		URL    string `json:"url"`
		Window struct {
			Open   bool      `json:"open"`
			Device string    `json:"device"`
			By     string    `json:"by"`
			Opened time.Time `json:"opened"`
			Until  time.Time `json:"until"`
			Closed time.Time `json:"closed"`
			Reason string    `json:"reason"`
		} `json:"window"`
		Windows struct {
			Opened            int `json:"opened"`
			ClosedByHandshake int `json:"closed_by_handshake"`
			ClosedByTimeout   int `json:"closed_by_timeout"`
		} `json:"windows"`
	} `json:"portal"`
}

func readPortalStatus(t *testing.T) (portalStatus, error) {
	out, err := ns("muc", filepath.Join(lab.bin, "fobgw"), "status", "-json", "-config", filepath.Join(lab.dir, "fobgw.conf"))
	if err != nil {
		return portalStatus{}, err
	}
	var s portalStatus
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return s, fmt.Errorf("fobgw status -json: %v\n%s", err, out)
	}
	if s.Portal == nil {
		return s, fmt.Errorf("fobgw status -json has no portal:\n%s", out)
	}
	return s, nil
}

func mustPortalStatus(t *testing.T) portalStatus {
	t.Helper()
	s, err := readPortalStatus(t)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fobgwCmd runs fobgw with args at muc.
func fobgwCmd(args ...string) (string, error) {
	return ns("muc", append([]string{filepath.Join(lab.bin, "fobgw")}, args...)...)
}

// portalWorld puts the portal in front of the FOB (mode page: its login
// page for every request; redirect: a 302 to http://portal.example/ first)
// and starts the gateway
// behind it, with the status page on the LAN, and waits until status reports
// the portal (within 15 s of the start). At the end the portal goes and the
// lab's own gateway is back (lab.standard).
func portalWorld(t *testing.T, mode string) {
	t.Helper()
	if lab.gateway != "fobgw" {
		t.Skipf("the %s gateway knows nothing of captive portals", lab.gateway)
	}
	lab.standard(t) // its cleanup starts the lab's own gateway again
	lab.lab(t, "portal-on", mode)
	t.Cleanup(func() { lab.lab(t, "portal-off") })
	start := time.Now()
	lab.labEnv(t, []string{"FOBL_GW_EXTRA=StatusListen = 192.168.86.1:80", "FOBL_GW_WAIT=none"}, "gw", lab.gateway, "auto")
	waitFor(t, "status to report the captive portal", 15*time.Second, func() error {
		s, err := readPortalStatus(t)
		if err != nil {
			return err
		}
		if s.Portal.State != "portal" || s.AtHome || !strings.Contains(s.AwayReason, "captive portal") {
			return fmt.Errorf("portal %q, at home %v (%q)", s.Portal.State, s.AtHome, s.AwayReason)
		}
		return nil
	})
	t.Logf("status reported the portal %v after the gateway's start began", time.Since(start).Round(100*time.Millisecond))
	if _, err := publicAddress("client"); err == nil {
		t.Fatal("the client reaches web before any window: the kill switch leaks")
	}
}

// leakPort is where the second LAN device sends its packets: a port
// nothing else in the lab uses.
const leakPort = "40404"

// leakWatch starts the second LAN device (namespace NAME at addr) sending a
// UDP datagram to web's leakPort every 200 ms until the test's end, and
// counts them: sent, at muc's bridge; crossed, at net's end of the FOB's WAN
// link, whatever their source (muc masquerades, fobgw too for a window),
// before net's own NAT.
func leakWatch(t *testing.T, name, addr string) (sent, crossed func() int) {
	t.Helper()
	lab.lab(t, "lan-device", name, addr)
	t.Cleanup(func() { lab.lab(t, "lan-device-del", name) })
	nft := func(where string, args ...string) {
		t.Helper()
		mustNS(t, where, append([]string{"nft"}, args...)...)
	}
	nft("net", "add", "table", "ip", "fobl-leak")
	t.Cleanup(func() { ns("net", "nft", "delete", "table", "ip", "fobl-leak") })
	nft("net", "add", "counter", "ip", "fobl-leak", "crossed")
	nft("net", "add", "chain", "ip", "fobl-leak", "pre", "{ type filter hook prerouting priority raw; policy accept; }")
	nft("net", "add", "rule", "ip", "fobl-leak", "pre", "iifname", "muc0", "udp", "dport", leakPort, "counter", "name", "crossed")
	nft("muc", "add", "table", "ip", "fobl-leak")
	t.Cleanup(func() { ns("muc", "nft", "delete", "table", "ip", "fobl-leak") })
	nft("muc", "add", "counter", "ip", "fobl-leak", "sent")
	nft("muc", "add", "chain", "ip", "fobl-leak", "pre", "{ type filter hook prerouting priority raw; policy accept; }")
	nft("muc", "add", "rule", "ip", "fobl-leak", "pre", "iifname", "br0", "ip", "saddr", addr, "udp", "dport", leakPort, "counter", "name", "sent")

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", nsName(name), "bash", "-c",
		"while :; do { echo leak >/dev/udp/203.0.113.80/"+leakPort+"; } 2>/dev/null; sleep 0.2; done")
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	sent = func() int { return counter(t, "muc", "fobl-leak", "sent") }
	crossed = func() int { return counter(t, "net", "fobl-leak", "crossed") }
	waitFor(t, "the second LAN device to send", 10*time.Second, func() error {
		if n := sent(); n < 3 {
			return fmt.Errorf("%d sent", n)
		}
		return nil
	})
	return sent, crossed
}

// homeAfterLogin waits, from the login on, until the client is seen as the
// home router's address and the window has closed by itself at the
// handshake, within 30 s; it returns how long that took.
func homeAfterLogin(t *testing.T, login time.Time) time.Duration {
	t.Helper()
	home := lab.begAddress(t)
	waitFor(t, "the client to be home and the window closed", 30*time.Second-time.Since(login), func() error {
		s, err := readPortalStatus(t)
		if err != nil {
			return err
		}
		if w := s.Portal.Window; w.Open || w.Reason != "handshake" {
			return fmt.Errorf("window open %v, closed by %q", w.Open, w.Reason)
		}
		if a, err := publicAddress("client"); err != nil || a != home {
			return fmt.Errorf("the client is seen as %q (%v), not home's %s", a, err, home)
		}
		return nil
	})
	took := time.Since(login)
	if !strings.Contains(lab.gatewayLog(), `msg="portal window closed: the device goes home again" part=portal device=192.168.86.254 reason=handshake`) {
		t.Errorf("the gateway's log does not say the window closed at the handshake:\n%s", lab.gatewayLog())
	}
	return took
}

// portalLogin sends the portal's form from the client, as its page does.
func portalLogin(t *testing.T) time.Time {
	t.Helper()
	page := mustNS(t, "client", "curl", "-fsS", "--max-time", "5", webURL+"/generate_204")
	if !strings.Contains(page, `id="login"`) {
		t.Fatalf("the client got no portal page in its window:\n%s", page)
	}
	out := mustNS(t, "client", "curl", "-fsS", "--max-time", "5", "-d", "accept=yes", webURL+"/login")
	if !strings.Contains(out, `id="online"`) {
		t.Fatalf("the portal's login failed:\n%s", out)
	}
	return time.Now()
}

// TestCaptivePortalCommand: behind a captive portal, status reports it
// within 15 s of the start; after `fobgw portal open` for the client, the
// client resolves the check's name through the local ISP, loads the
// portal's page and logs in; within 30 s of the login it is home and the
// window has closed by itself at the handshake. A second LAN device sent
// packets all along and none of them crossed the WAN.
func TestCaptivePortalCommand(t *testing.T) {
	portalWorld(t, "page")
	sent, crossed := leakWatch(t, "dev9", "192.168.86.60")
	conf := filepath.Join(lab.dir, "fobgw.conf")

	for _, bad := range []struct{ args, want string }{
		{"192.168.2.9", "not inside LAN"},
		{"192.168.86.254 -for 31m", "longer than 30m0s"},
	} {
		out, err := fobgwCmd(append([]string{"portal", "open", "-config", conf}, strings.Fields(bad.args)...)...)
		if err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("portal open %s: %v\n%s\nwant refused with %q", bad.args, err, out, bad.want)
		}
	}
	out, err := fobgwCmd("portal", "open", "-config", conf, "192.168.86.254", "-for", "5m")
	if err != nil || !strings.Contains(out, "window open for 192.168.86.254") || !strings.Contains(out, "Log in at the portal's page") {
		t.Fatalf("portal open: %v\n%s", err, out)
	}
	if out, err := fobgwCmd("portal", "open", "-config", conf, "192.168.86.60"); err == nil || !strings.Contains(out, "a window is open for another device") {
		t.Errorf("a second device's window while one is open: %v\n%s", err, out)
	}
	if text := mustNS(t, "muc", filepath.Join(lab.bin, "fobgw"), "status", "-config", conf); !strings.Contains(text, "portal window:    OPEN for 192.168.86.254") {
		t.Errorf("fobgw status does not show the window:\n%s", text)
	}
	// Its DNS goes to the local ISP's resolver: the check's name resolves.
	if a, err := dig("client", "192.168.86.1", "connectivitycheck.gstatic.com", false); err != nil || len(a) != 1 || a[0] != "203.0.113.80" {
		t.Errorf("in its window the client resolves the check's name to %v (%v), want the local ISP's answer 203.0.113.80", a, err)
	}
	// The second device still cannot get out.
	if a, err := publicAddress("dev9"); err == nil {
		t.Errorf("the second LAN device reaches web as %s while the client's window is open", a)
	}

	login := portalLogin(t)
	took := homeAfterLogin(t, login)
	t.Logf("home %v after the login", took.Round(100*time.Millisecond))
	s := mustPortalStatus(t)
	if s.Portal.Windows.Opened != 1 || s.Portal.Windows.ClosedByHandshake != 1 {
		t.Errorf("window counts %+v, want 1 opened and closed by the handshake", s.Portal.Windows)
	}
	n := sent()
	waitFor(t, "the second device to send after the close", 10*time.Second, func() error {
		if sent() < n+3 {
			return fmt.Errorf("%d sent", sent())
		}
		return nil
	})
	if c := crossed(); c != 0 {
		t.Errorf("%d of the second LAN device's %d packets crossed the WAN", c, sent())
	} else {
		t.Logf("the second LAN device sent %d packets; none crossed the WAN", sent())
	}
}

// TestCaptivePortalButton: the same through the status page's button in
// headless Chromium on the client; a POST of the button's form from another
// origin, with a token the page gave this very client, opens nothing.
func TestCaptivePortalButton(t *testing.T) {
	portalWorld(t, "page")
	sent, crossed := leakWatch(t, "dev9", "192.168.86.60")
	const page = "http://192.168.86.1/"

	// A page elsewhere (here a file, another origin) posts the form with a
	// real token: only the origin tells it apart.
	m := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(mustNS(t, "client", "curl", "-fsS", "--max-time", "5", page))
	if m == nil {
		t.Fatal("the status page shows no button while a portal is detected")
	}
	evil := filepath.Join(t.TempDir(), "evil.html")
	if err := os.WriteFile(evil, []byte(`<!doctype html><form id="f" method="post" action="`+page+`portal/open"><input name="token" value="`+m[1]+`"></form><script>document.getElementById("f").submit()</script>`), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(evil), 0o755)
	b := newBrowser(t, "client")
	b.navigate(t, "file://"+evil)
	b.waitJS(t, "the other site's POST to be answered", 20*time.Second, `location.href.startsWith("`+page+`portal/open") && document.readyState == "complete"`)
	if body := b.text(t, "f") + mustEval(t, b, "document.body.innerText"); !strings.Contains(body, "no window was opened") {
		t.Errorf("the other site's POST was answered %q", body)
	}
	if s := mustPortalStatus(t); s.Portal.Window.Open || s.Portal.Windows.Opened != 0 {
		t.Fatalf("a POST from another origin opened a window: %+v", s.Portal.Window)
	}

	b.navigate(t, page)
	b.waitJS(t, "the page's button", 20*time.Second, `!!document.getElementById("portal-login")`)
	b.click(t, "portal-login")
	b.waitJS(t, "the page to show the window", 20*time.Second, `!!document.getElementById("portal-window") && location.pathname == "/"`)
	if w := b.text(t, "portal-window"); !strings.Contains(w, "open for 192.168.86.254") {
		t.Errorf("the page shows the window as %q", w)
	}
	if s := mustPortalStatus(t); !s.Portal.Window.Open || s.Portal.Window.Device != "192.168.86.254" || s.Portal.Window.By != "page" {
		t.Fatalf("after the button: %+v", s.Portal.Window)
	}

	// The portal in the same browser: any http page is its login page.
	b.navigate(t, webURL+"/")
	b.waitJS(t, "the portal's page", 20*time.Second, `!!document.getElementById("login")`)
	b.click(t, "accept")
	b.click(t, "login")
	b.waitJS(t, "the portal to say online", 20*time.Second, `!!document.getElementById("online")`)
	took := homeAfterLogin(t, time.Now())
	t.Logf("home %v after the login", took.Round(100*time.Millisecond))
	if c := crossed(); c != 0 {
		t.Errorf("%d of the second LAN device's %d packets crossed the WAN", c, sent())
	}
}

func mustEval(t *testing.T, b *browser, expr string) string {
	t.Helper()
	v, err := b.eval(expr)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	json.Unmarshal(v, &s)
	return s
}

// TestCaptivePortalWindowEnds: behind a portal that redirects, status
// names the redirect's target; a window opened for the client by its MAC
// lets it out (its DNS through the local ISP once the neighbour table has
// its address); nobody logs in, and the window ends at its time limit, the
// client behind the kill switch again. The command takes any length up to
// 30 minutes, seconds too: a shorter window only ever gives less, so the
// test needs no path of its own.
func TestCaptivePortalWindowEnds(t *testing.T) {
	portalWorld(t, "redirect")
	if u := mustPortalStatus(t).Portal.URL; u != "http://portal.example/" {
		t.Errorf("status names the portal's page %q, want the redirect's target http://portal.example/", u)
	}
	conf := filepath.Join(lab.dir, "fobgw.conf")
	mac := regexp.MustCompile(`link/ether ([0-9a-f:]{17})`).FindStringSubmatch(mustNS(t, "client", "ip", "link", "show", "eth0"))
	if mac == nil {
		t.Fatal("the client's eth0 has no MAC address")
	}
	const length = 8 * time.Second
	if out, err := fobgwCmd("portal", "open", "-config", conf, mac[1], "-for", length.String()); err != nil {
		t.Fatalf("portal open: %v\n%s", err, out)
	}
	opened := mustPortalStatus(t).Portal.Window.Opened
	if head, err := ns("client", "curl", "-sS", "--max-time", "3", "-o", "/dev/null", "-D-", webURL+"/"); err != nil || !strings.Contains(head, "Location: http://portal.example/") {
		t.Fatalf("in its window the client is not sent to the portal: %v\n%s", err, head)
	}
	// Its DNS goes to the local ISP's resolver once the neighbour table
	// knows its address: the portal's name resolves, and its page loads.
	var portalAddr string
	waitFor(t, "the client's DNS through the local ISP", 5*time.Second, func() error {
		a, err := dig("client", "192.168.86.1", "portal.example", false)
		if err != nil || len(a) != 1 {
			return fmt.Errorf("portal.example resolves to %v (%v), want the local ISP's answer", a, err)
		}
		portalAddr = a[0]
		return nil
	})
	if page, err := ns("client", "curl", "-fsS", "--max-time", "3", "--resolve", "portal.example:80:"+portalAddr, "http://portal.example/"); err != nil || !strings.Contains(page, `id="login"`) {
		t.Fatalf("in its window the client gets no portal page: %v\n%s", err, page)
	}
	waitFor(t, "the window to end", length+5*time.Second, func() error {
		s, err := readPortalStatus(t)
		if err != nil {
			return err
		}
		if w := s.Portal.Window; w.Open || w.Reason != "timeout" {
			return fmt.Errorf("window open %v, closed by %q", w.Open, w.Reason)
		}
		return nil
	})
	w := mustPortalStatus(t).Portal.Window
	if d := w.Closed.Sub(opened); d < length || d > length+2*time.Second {
		t.Errorf("the window closed %v after it opened, want %v (and at most 2 s later)", d, length)
	}
	if page, err := ns("client", "curl", "-fsS", "--max-time", "3", webURL+"/"); err == nil {
		t.Errorf("after its window the client still gets out:\n%s", page)
	}
	if !strings.Contains(lab.gatewayLog(), "reason=timeout") {
		t.Errorf("the gateway's log does not say the window ended at its time:\n%s", lab.gatewayLog())
	}
}
