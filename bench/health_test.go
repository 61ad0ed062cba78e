package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests of issue 12 (health beyond the story): the LAN's own way home, Masquerade, an
// endpoint list. They need the fobgw gateway.
// healthGateway skips the test for the stock gateway, and brings the lab to the standard world.
func healthGateway(t *testing.T) {
	t.Helper()
	if lab.gateway != "fobgw" {
		t.Skipf("the %s gateway has no LAN-path probe, Masquerade or endpoint list", lab.gateway)
	}
	lab.standard(t)
}

// TestLANPath: a home peer that allows only the tunnel address (10.1.200.2/32), as the story's
// home router is configured. With Masquerade off the tunnel probe is answered but the LAN is
// dead at home, and status and metrics say so within 15 s; with Masquerade on the client is
// through, seen at web as the home router; `fobgw down` leaves no NAT rule.
func TestLANPath(t *testing.T) {
	healthGateway(t)
	const bar = 15 * time.Second
	lab.lab(t, "beg-allowed", "10.1.200.2/32") // standard's cleanup allows the LAN again

	t.Run("Masquerade off: LAN path reported broken", func(t *testing.T) {
		logStart := logSize(t, lab)
		start := time.Now()
		lab.labEnv(t, []string{"FOBL_GW_WAIT=tunnel"}, "gw", "fobgw", "auto")
		var st gwStatus
		waitFor(t, "status to report the LAN path broken and the tunnel fine", bar+10*time.Second, func() error {
			st = lab.status(t)
			switch {
			case !st.TunnelUp || st.LastProbeOK.IsZero() || st.ProbeMisses != 0:
				return fmt.Errorf("tunnel not fine yet: tunnel_up %v, last_probe_ok %v, probe_misses %d", st.TunnelUp, st.LastProbeOK, st.ProbeMisses)
			case st.LANPath == nil:
				return fmt.Errorf("status has no lan_path")
			case st.LANPath.OK:
				return fmt.Errorf("lan_path ok is true")
			case st.LANPath.Probes == 0:
				return fmt.Errorf("lan_path: no probe yet")
			}
			return nil
		})
		d := time.Since(start)
		if d > bar {
			t.Errorf("the broken LAN path was reported %v after start, want within %v", d.Round(100*time.Millisecond), bar)
		}
		t.Logf("LAN path reported broken %v after start: %+v", d.Round(100*time.Millisecond), *st.LANPath)
		if !strings.Contains(st.LANPath.Reason, "192.168.86.0/24") || !strings.Contains(st.LANPath.Reason, "Masquerade = on") {
			t.Errorf("lan_path reason %q does not name the fix (allow 192.168.86.0/24 at home, or Masquerade = on)", st.LANPath.Reason)
		}
		m := lab.metrics(t)
		for name, want := range map[string]float64{"fobgw_lan_path_up": 0, "fobgw_tunnel_up": 1} {
			if got, ok := m[name]; !ok || got != want {
				t.Errorf("metric %s = %v (present %v), want %v", name, got, ok, want)
			}
		}
		// The failure is real: the client gets nothing.
		if out, err := ns("client", "curl", "-sS", "--max-time", "3", webURL+"/ip"); err == nil {
			t.Errorf("control: the client reaches web while home drops its packets: %s", out)
		}
		// One warning, not one per probe: wait for two more probes of the LAN path, then count.
		probes := st.LANPath.Probes
		waitFor(t, "two more probes of the LAN path", bar, func() error {
			if lp := lab.status(t).LANPath; lp == nil || lp.Probes < probes+2 {
				return fmt.Errorf("lan_path %+v, want %d probes", lp, probes+2)
			}
			return nil
		})
		if n := countLog(t, lab, logStart, "level=WARN", "Masquerade = on"); n != 1 {
			t.Errorf("%d warnings in the log name the fix, want 1:\n%s", n, lab.gatewayLog())
		}
	})

	t.Run("Masquerade on: client through as the home router", func(t *testing.T) {
		lab.labEnv(t, []string{"FOBL_GW_EXTRA=Masquerade = on"}, "gw", "fobgw", "auto")
		if got, err := publicAddress("client"); err != nil || got != lab.begAddress(t) {
			t.Errorf("with Masquerade on the client's request to web: %q, %v; want it from the home router %s", got, err, lab.begAddress(t))
		}
		waitFor(t, "status to report the LAN path fine", bar, func() error {
			if st := lab.status(t); st.LANPath == nil || !st.LANPath.OK {
				return fmt.Errorf("lan_path %+v", st.LANPath)
			}
			return nil
		})
		if got := lab.metrics(t)["fobgw_lan_path_up"]; got != 1 {
			t.Errorf("fobgw_lan_path_up = %v with Masquerade on, want 1", got)
		}
		if out := mustNS(t, "muc", "nft", "list", "table", "inet", "fobgw"); !strings.Contains(out, fmt.Sprintf("oifname %q ip saddr 192.168.86.0/24 masquerade", lab.iface)) {
			t.Errorf("muc's table inet fobgw lacks the masquerade rule:\n%s", out)
		}
		// Drift: someone deletes the table; the periodic repair puts it back and counts it.
		before := lab.status(t).RouteRepairs
		mustNS(t, "muc", "nft", "delete", "table", "inet", "fobgw")
		waitFor(t, "the masquerade table repaired", 15*time.Second, func() error {
			if out, err := ns("muc", "nft", "list", "table", "inet", "fobgw"); err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		if after := lab.status(t).RouteRepairs; after <= before {
			t.Errorf("route_repairs %d after the masquerade table was repaired, was %d", after, before)
		}
		out, err := ns("muc", filepath.Join(lab.bin, "fobgw"), "check", "-config", filepath.Join(lab.dir, "fobgw.conf"))
		if err != nil || !strings.Contains(out, "masquerade") {
			t.Errorf("fobgw check does not show the NAT it would install (%v):\n%s", err, out)
		}
	})

	t.Run("fobgw down leaves no NAT rule", func(t *testing.T) {
		if !strings.Contains(lab.fileString(t, "fobgw.conf"), "Masquerade = on") { // run alone
			lab.labEnv(t, []string{"FOBL_GW_EXTRA=Masquerade = on"}, "gw", "fobgw", "auto")
		}
		lab.killGateway(t)
		// Control: a killed gateway leaves its table behind.
		if out := mustNS(t, "muc", "nft", "list", "ruleset"); !strings.Contains(out, "table inet fobgw") {
			t.Fatalf("control: after kill -9 there is no table inet fobgw to remove:\n%s", out)
		}
		// A killed process's leader turns zombie before its other threads have exited and
		// closed its sockets, so down may still find the gateway answering for a moment.
		waitFor(t, "fobgw down to succeed", 5*time.Second, func() error {
			out, err := ns("muc", filepath.Join(lab.bin, "fobgw"), "down", "-config", filepath.Join(lab.dir, "fobgw.conf"))
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		out := mustNS(t, "muc", "nft", "list", "ruleset")
		if strings.Contains(out, "table inet fobgw") || strings.Contains(out, fmt.Sprintf("oifname %q", lab.iface)) {
			t.Errorf("after fobgw down muc still has fobgw's NAT:\n%s", out)
		}
		// A second down finds nothing and is fine.
		mustNS(t, "muc", filepath.Join(lab.bin, "fobgw"), "down", "-config", filepath.Join(lab.dir, "fobgw.conf"))
	})
}

// TestEndpointList: the ISP drops UDP between the FOB and the first endpoint's port, both ways;
// the home router answers on 443 too. With both in the Endpoint list the client is through on the
// second within 30 s of the gateway's start, and status names the entry.
func TestEndpointList(t *testing.T) {
	healthGateway(t)
	const bar = 30 * time.Second
	// standard's cleanup unblocks the port, takes 443 away and restarts the standard gateway.
	lab.lab(t, "block-udp", "13231")
	lab.lab(t, "beg-port", "443")
	start := time.Now()
	lab.labEnv(t, []string{"FOBL_GW_WAIT=none", "FOBL_ENDPOINTS=home.example:13231, home.example:443"}, "gw", "fobgw", "auto")
	waitFor(t, "the client through the home router", bar+15*time.Second, func() error {
		got, err := publicAddress("client")
		if err != nil {
			return err
		}
		if got != lab.begAddress(t) {
			return fmt.Errorf("web sees the client from %s", got)
		}
		return nil
	})
	d := time.Since(start)
	t.Logf("the client was through %v after the gateway's start", d.Round(100*time.Millisecond))
	if d > bar {
		t.Errorf("the client was through only after %v, want within %v", d, bar)
	}
	if n := counter(t, "net", "fobl-block", "hits"); n == 0 {
		t.Errorf("control: the ISP dropped nothing to port 13231: the first entry was never tried")
	}
	if n := counter(t, "beg", "fobl-altport", "hits"); n == 0 {
		t.Errorf("control: beg's redirect from port 443 saw no flow")
	}
	st := lab.status(t)
	if st.EndpointEntry != "home.example:443" || !strings.HasSuffix(st.Endpoint, ":443") {
		t.Errorf("status: endpoint_entry %q, endpoint %q; want home.example:443 and an address on port 443", st.EndpointEntry, st.Endpoint)
	}
	if out := mustNS(t, "muc", "wg", "show", lab.iface, "endpoints"); !strings.Contains(out, ":443") {
		t.Errorf("wg show: the peer's endpoint is not on port 443: %s", out)
	}
}

// gwStatus is the part of `fobgw status -json` these tests read.
type gwStatus struct {
	TunnelUp      bool      `json:"tunnel_up"`
	Endpoint      string    `json:"endpoint"`
	EndpointEntry string    `json:"endpoint_entry"` // the Endpoint list's entry in use
	ProbeMisses   int       `json:"probe_misses"`
	RouteRepairs  uint64    `json:"route_repairs"`
	LastProbeOK   time.Time `json:"last_probe_ok"`
	LANPath       *struct {
		OK     bool      `json:"ok"`
		Source string    `json:"source"` // the LAN address the probe is sent from
		Probes uint64    `json:"probes"`
		LastOK time.Time `json:"last_ok"`
		Reason string    `json:"reason"` // why not ok, and the fix
	} `json:"lan_path"`
}

// status is the running gateway's `fobgw status -json`.
func (w *world) status(tb testing.TB) gwStatus {
	tb.Helper()
	out := mustNS(tb, "muc", filepath.Join(w.bin, "fobgw"), "status", "-json", "-config", filepath.Join(w.dir, "fobgw.conf"))
	var st gwStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		tb.Fatalf("fobgw status -json: %v\n%s", err, out)
	}
	return st
}

// metrics are the gateway's unlabelled metrics by name, read at the MetricsListen of the lab's
// fobgw.conf.
func (w *world) metrics(tb testing.TB) map[string]float64 {
	tb.Helper()
	conf, err := os.ReadFile(filepath.Join(w.dir, "fobgw.conf"))
	if err != nil {
		tb.Fatal(err)
	}
	listen := ""
	for _, line := range strings.Split(string(conf), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "MetricsListen" {
			listen = strings.TrimSpace(v)
		}
	}
	if listen == "" {
		tb.Fatalf("the lab's fobgw.conf has no MetricsListen:\n%s", conf)
	}
	out := mustNS(tb, "muc", "curl", "-fsS", "--max-time", "3", "http://"+listen+"/metrics")
	m := map[string]float64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || strings.HasPrefix(line, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			m[f[0]] = v
		}
	}
	return m
}

// logSize is the length of the gateway's log (it grows across runs), for countLog.
func logSize(tb testing.TB, w *world) int {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(w.dir, "gw.log"))
	if err != nil {
		tb.Fatal(err)
	}
	return len(b)
}

// countLog counts the lines of the gateway's log after offset from that hold every one of words.
func countLog(tb testing.TB, w *world, from int, words ...string) int {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(w.dir, "gw.log"))
	if err != nil {
		tb.Fatal(err)
	}
	if from > len(b) {
		tb.Fatalf("the gateway's log shrank from %d to %d bytes", from, len(b))
	}
	n := 0
	for _, line := range strings.Split(string(b[from:]), "\n") {
		all := true
		for _, x := range words {
			all = all && strings.Contains(line, x)
		}
		if all {
			n++
		}
	}
	return n
}
