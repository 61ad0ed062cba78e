package bench

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The local breakout (issue 18) in the story's world: devices in Bypass, by address and by MAC,
// and LocalDomains, leave through the local ISP, masqueraded by fobgw alone; everyone and
// everything else keeps the tunnel and the kill switch.

const (
	bypassAddr = "192.168.86.50"     // the second LAN device, bypassed by address
	bypassMAC  = "02:11:22:33:44:55" // the third, bypassed by MAC
	macFirst   = "192.168.86.60"     // the MAC device's first lease
	macSecond  = "192.168.86.61"     // and its next
	homeQ      = "203.0.113.99"      // q.example at the home Pi-hole (the ISP's resolver knows no q.example)
)

// breakoutStatus is the breakout's part of `fobgw status -json`.
type breakoutStatus struct {
	DNS struct {
		Local uint64 `json:"local"`
	} `json:"dns"`
	Breakout *struct {
		Resolver string `json:"resolver"`
		Devices  []struct {
			Device string   `json:"device"`
			Addrs  []string `json:"addrs"`
			Seen   bool     `json:"seen"`
			Bytes  uint64   `json:"bytes"`
		} `json:"devices"`
		Local4 int `json:"local4"`
	} `json:"breakout"`
}

func (w *world) breakoutStatus(tb testing.TB) breakoutStatus {
	tb.Helper()
	out := mustNS(tb, "muc", filepath.Join(w.bin, "fobgw"), "status", "-json", "-config", filepath.Join(w.dir, "fobgw.conf"))
	var st breakoutStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		tb.Fatalf("fobgw status -json: %v\n%s", err, out)
	}
	if st.Breakout == nil {
		tb.Fatalf("fobgw status -json shows no breakout:\n%s", out)
	}
	return st
}

// breakoutWorld brings what a breakout test needs, from the standard world: fobgw with the
// [Gateway] lines extra, no NAT of muc's own on the WAN (a board has none: fobgw's must do), and
// the LAN devices (name, address, MAC or ""). The standard world's cleanup undoes all of it (lab.sh
// drift knows these changes).
func breakoutWorld(t *testing.T, extra string, devices ...[3]string) {
	t.Helper()
	if lab.gateway != "fobgw" {
		t.Skip("the local breakout is fobgw's (FOBL_E2E_GATEWAY=stock runs the stock recipe)")
	}
	lab.standard(t)
	mustNS(t, "muc", "nft", "delete", "table", "ip", "fobl-nat")
	lab.labEnv(t, []string{"FOBL_GW_EXTRA=" + extra}, "gw", "fobgw", "auto")
	for _, d := range devices {
		args := []string{"lan-device", d[0], d[1]}
		if d[2] != "" {
			args = append(args, d[2])
		}
		lab.lab(t, args...)
	}
}

// logLAN logs what the LAN looks like from muc and from dev, for a failure's message.
func logLAN(t *testing.T, dev string) {
	t.Helper()
	var b strings.Builder
	for _, c := range [][]string{
		{"muc", "ip", "neigh", "show", "dev", "br0"}, {"muc", "bridge", "fdb", "show", "br", "br0"}, {"muc", "ip", "-br", "link"},
		{"muc", "nft", "list", "table", "inet", "fobgw"}, {dev, "ip", "neigh"}, {dev, "ip", "-br", "addr"}, {dev, "ip", "-br", "link"},
	} {
		out, err := ns(c[0], c[1:]...)
		fmt.Fprintf(&b, "%s: %s (%v)\n%s\n", c[0], strings.Join(c[1:], " "), err, out)
	}
	t.Logf("the LAN as muc and %s see it:\n%s", dev, b.String())
}

// onlyFobgwNAT fails the test when muc translates anything but in fobgw's table.
func onlyFobgwNAT(t *testing.T) {
	t.Helper()
	ruleset := mustNS(t, "muc", "nft", "list", "ruleset")
	table := ""
	for _, line := range strings.Split(ruleset, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "table" {
			table = f[1] + " " + f[2]
		}
		if (strings.Contains(line, "type nat") || strings.Contains(line, "masquerade") || strings.Contains(line, "snat") || strings.Contains(line, "dnat")) && table != "inet fobgw" {
			t.Errorf("muc translates in table %s, not fobgw's: %s\n%s", table, strings.TrimSpace(line), ruleset)
		}
	}
	if !strings.Contains(ruleset, "table inet fobgw") {
		t.Errorf("fobgw's table is missing at muc:\n%s", ruleset)
	}
	// iptables' legacy tables are not in nft's ruleset.
	if out, err := ns("muc", "iptables-legacy-save"); err == nil && strings.Contains(out, "-A ") {
		t.Errorf("muc has legacy iptables rules:\n%s", out)
	}
}

// TestBreakoutDevices: a device bypassed by address and one by MAC (which then takes another
// lease) reach web as the local ISP's address and get the local ISP's DNS answer; the first client
// is still seen as home and gets the home answer; muc translates nothing but in fobgw's table.
func TestBreakoutDevices(t *testing.T) {
	breakoutWorld(t, "Bypass = "+bypassAddr+", "+bypassMAC,
		[3]string{"dev2", bypassAddr, ""}, [3]string{"dev3", macFirst, bypassMAC})
	onlyFobgwNAT(t)
	check := func(dev, wantWeb, wantDNS string) {
		t.Helper()
		if got, err := publicAddress(dev); err != nil || got != wantWeb {
			t.Errorf("web sees %s as %q (%v), want %s", dev, got, err, wantWeb)
			logLAN(t, dev)
		}
		if got, err := dig(dev, "192.168.86.1", "tv.example", false); err != nil || !slices.Equal(got, []string{wantDNS}) {
			t.Errorf("%s asks 192.168.86.1 for tv.example: %v (%v), want [%s]", dev, got, err, wantDNS)
		}
	}
	check("client", lab.begAddress(t), homeCDN)
	check("dev2", ispPublic, germanCDN)
	check("dev3", ispPublic, germanCDN)

	// A new lease: the MAC keeps its bypass, at the new address too.
	lab.lab(t, "lan-device-addr", "dev3", macSecond)
	check("dev3", ispPublic, germanCDN)
	check("client", lab.begAddress(t), homeCDN)

	st := lab.breakoutStatus(t)
	seen := map[string]bool{}
	for _, d := range st.Breakout.Devices {
		seen[d.Device] = d.Seen && d.Bytes > 0
		if d.Device == bypassMAC && !slices.Contains(d.Addrs, macSecond) {
			t.Errorf("status shows the MAC device at %v, want %s among them", d.Addrs, macSecond)
		}
	}
	if !seen[bypassAddr] || !seen[bypassMAC] || st.DNS.Local < 3 {
		t.Errorf("status: devices %+v, %d local answers; want both seen with bytes, at least 3 answers", st.Breakout.Devices, st.DNS.Local)
	}
}

// TestBreakoutLocalDomains: with LocalDomains = tv.example (the local ISP's resolver and the
// home Pi-hole answer it differently) every client gets the local answer and its packets to that
// address leave through the local ISP, another name and web still go home, and the address leaves
// the local set once its element times out (the ISP's TTL is 1 s: the floor, 60 s).
func TestBreakoutLocalDomains(t *testing.T) {
	breakoutWorld(t, "LocalDomains = tv.example", [3]string{"dev2", "192.168.86.70", ""})
	lab.lab(t, "cdn", "on")
	// Control: home's address for tv.example goes home.
	if got, err := ns("client", "curl", "-fsS", "--max-time", "3", "http://"+homeCDN+"/ip"); err != nil || strings.TrimSpace(got) != lab.begAddress(t) {
		t.Fatalf("control: the client reaches %s as %q (%v), want through home (%s)", homeCDN, got, err, lab.begAddress(t))
	}
	var answered time.Time
	for _, dev := range []string{"client", "dev2"} {
		got, err := dig(dev, "192.168.86.1", "tv.example", false)
		answered = time.Now()
		if err != nil || !slices.Equal(got, []string{germanCDN}) {
			t.Errorf("%s asks for tv.example: %v (%v), want the local answer [%s]", dev, got, err, germanCDN)
		}
		// At once after the answer: its route is there before the client has it.
		if got, err := ns(dev, "curl", "-fsS", "--max-time", "3", "http://"+germanCDN+"/ip"); err != nil || strings.TrimSpace(got) != ispPublic {
			t.Errorf("%s reaches %s as %q (%v), want direct (%s)", dev, germanCDN, got, err, ispPublic)
		}
		if got, err := dig(dev, "192.168.86.1", "q.example", false); err != nil || !slices.Equal(got, []string{homeQ}) {
			t.Errorf("%s asks for q.example: %v (%v), want home's answer [%s]", dev, got, err, homeQ)
		}
		if got, err := publicAddress(dev); err != nil || got != lab.begAddress(t) {
			t.Errorf("web sees %s as %q (%v), want home (%s)", dev, got, err, lab.begAddress(t))
		}
	}
	inSet := func() (bool, error) {
		out, err := ns("muc", "nft", "list", "set", "inet", "fobgw", "local4")
		return strings.Contains(out, germanCDN), err
	}
	if in, err := inSet(); !in || err != nil {
		t.Fatalf("%s is not in the local set (%v)", germanCDN, err)
	}
	if st := lab.breakoutStatus(t); st.Breakout.Local4 != 1 {
		t.Errorf("status: local set of %d IPv4 addresses, want 1", st.Breakout.Local4)
	}
	waited := waitFor(t, "the element to time out", 90*time.Second, func() error {
		if in, err := inSet(); in || err != nil {
			return fmt.Errorf("still in the set (%v)", err)
		}
		return nil
	})
	gone := time.Since(answered)
	t.Logf("the element was gone %v after the last answer (waited %v)", gone.Round(100*time.Millisecond), waited.Round(100*time.Millisecond))
	if gone < 55*time.Second {
		t.Errorf("the element was gone after %v, before the 60 s floor", gone)
	}
	// Now a new connection to it goes home.
	if got, err := ns("client", "curl", "-fsS", "--max-time", "3", "http://"+germanCDN+"/ip"); err != nil || strings.TrimSpace(got) != lab.begAddress(t) {
		t.Errorf("after the timeout the client reaches %s as %q (%v), want through home (%s)", germanCDN, got, err, lab.begAddress(t))
	}
}

// TestBreakoutKillSwitch: after kill -9 a bypassed device still leaves directly, and so does a
// new connection to an address in the local set until its element times out; to anywhere else the
// client gets nothing and not one of its packets crosses the WAN link; `fobgw down` then leaves no rule, set
// or NAT table at muc.
func TestBreakoutKillSwitch(t *testing.T) {
	breakoutWorld(t, "Bypass = "+bypassAddr+"\nLocalDomains = tv.example", [3]string{"dev2", bypassAddr, ""})
	lab.lab(t, "cdn", "on")
	if got, err := dig("client", "192.168.86.1", "tv.example", false); err != nil || !slices.Equal(got, []string{germanCDN}) {
		t.Fatalf("control: tv.example %v (%v), want [%s] (the local set filled)", got, err, germanCDN)
	}
	lab.killGateway(t)
	if got, err := publicAddress("dev2"); err != nil || got != ispPublic {
		t.Errorf("after kill -9 the bypassed device reaches web as %q (%v), want %s as before", got, err, ispPublic)
	}
	// Until its element times out, the local set's address still goes direct, for any client.
	if got, err := ns("client", "curl", "-fsS", "--max-time", "3", "http://"+germanCDN+"/ip"); err != nil || strings.TrimSpace(got) != ispPublic {
		t.Errorf("after kill -9 the client reaches %s (in the local set) as %q (%v), want direct (%s)", germanCDN, got, err, ispPublic)
	}
	mustNS(t, "net", "nft", "reset", "counters", "table", "ip", "fobl-watch")
	// web is not in the local set: the client must get nowhere.
	if out, err := ns("client", "curl", "-sS", "--max-time", "5", webURL+"/ip"); err == nil {
		t.Errorf("after kill -9 the client still reaches web: %s", out)
	}
	for _, dst := range []string{"203.0.113.80", "192.168.88.1", "198.51.100.1"} {
		if out, err := ns("client", "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", dst); err == nil {
			t.Errorf("after kill -9 the client still pings %s:\n%s", dst, out)
		}
	}
	if got, err := dig("client", "192.168.86.1", "q.example", false); err == nil && len(got) > 0 {
		t.Errorf("after kill -9 the client still gets DNS answers: %v", got)
	}
	for _, c := range []string{"lan_src", "to_web", "other"} {
		if n := counter(t, "net", "fobl-watch", c); n != 0 {
			t.Errorf("after kill -9, %d packets (counter %s) crossed the WAN link while the client tried to get out", n, c)
		}
	}

	mustNS(t, "muc", filepath.Join(lab.bin, "fobgw"), "down", "-config", filepath.Join(lab.dir, "fobgw.conf"))
	if out := mustNS(t, "muc", "nft", "list", "ruleset"); strings.Contains(out, "fobgw") || strings.Contains(out, "nat") {
		t.Errorf("after fobgw down muc still has:\n%s", out)
	}
	for _, fam := range []string{"-4", "-6"} {
		for _, line := range strings.Split(mustNS(t, "muc", "ip", fam, "rule", "show"), "\n") {
			if strings.Contains(line, "proto 70") || strings.Contains(line, "fwmark") || strings.Contains(line, "lookup 100") {
				t.Errorf("after fobgw down a rule is left: %s", line)
			}
		}
	}
	if got, err := publicAddress("dev2"); err == nil {
		t.Errorf("after fobgw down the bypassed device still reaches web (as %s): nothing should translate it", got)
	}
}
