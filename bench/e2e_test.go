package bench

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	webURL    = "http://203.0.113.80"
	ispPublic = "203.0.113.1"  // the MUC ISP's address as web sees it (net masquerades the FOB)
	begFirst  = "198.51.100.2" // the home router's public address when the lab comes up
	begMoved  = "198.51.100.3" // where TestHomeAddressChange moves it (and back, run again)
	homeCDN   = "203.0.113.91" // tv.example at the home Pi-hole
	germanCDN = "203.0.113.90" // tv.example at the MUC ISP's resolver
	bigSize   = 256 << 10
)

// lab is the world the tests share, up for the whole package run.
var lab *world

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "FAIL: the bench end-to-end tests build network namespaces and need root: run `sudo go test ./bench/...` (or `make test` as root)")
		return 1
	}
	bench, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	// Two runs with the same prefix would tear down each other's lab (lab.sh up removes whatever
	// carries the prefix) and fail in ways that say nothing of the cause: refuse the second one.
	prefix := strings.TrimSuffix(nsName(""), "-")
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "fobgw-lab-"+prefix+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: the lab's lock file:", err)
		return 1
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: another run of the bench tests holds the lab prefix %q (%s: %v): wait for it, or give this run a prefix of its own with FOBL_NS\n", prefix, lock.Name(), err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "fobl-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: make a temporary directory:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	w := &world{
		bench:   bench,
		dir:     filepath.Join(tmp, "lab"),
		bin:     filepath.Join(tmp, "bin"),
		gateway: "fobgw",
		iface:   wgName("fobgw0"),
	}
	if os.Getenv("FOBL_E2E_GATEWAY") == "stock" {
		w.gateway, w.iface = "stock", wgName("wgstock0")
	}
	if out, err := w.labRun(nil, "build"); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: build the lab's binaries:", err, out)
		return 1
	}
	if _, err := os.Stat(filepath.Join(w.bin, "fobgw")); err != nil && w.gateway == "fobgw" {
		fmt.Fprintln(os.Stderr, "FAIL: no fobgw binary was built from ./cmd/fobgw:", err)
		return 1
	}

	// Tear the world down on every way out, Ctrl-C included.
	down := func() {
		if out, err := w.labRun(nil, "down"); err != nil {
			fmt.Fprintln(os.Stderr, "lab down:", err, out)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		down()
		os.RemoveAll(tmp)
		os.Exit(1)
	}()
	defer down()
	// go test's -timeout panics and exits without deferred calls: shortly before it, say what the
	// lab looks like and take it down, so that a timed-out run leaves a diagnosis and no namespace.
	flag.Parse()
	if d := flag.Lookup("test.timeout").Value.(flag.Getter).Get().(time.Duration); d > time.Minute {
		watchdog := time.AfterFunc(d-30*time.Second, func() {
			fmt.Fprintf(os.Stderr, "FAIL: the bench tests are about to pass -timeout %v; the lab now:\n%s\n", d, w.diagnosis())
			down()
		})
		defer watchdog.Stop()
	}

	start := time.Now()
	if out, err := w.labRun(nil, "up"); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: bring the lab up (a network namespace could not be made?):", err, out)
		return 1
	}
	if out, err := w.labRun(stdEnv, "gw", w.gateway, "auto"); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: start the gateway:", err, out)
		if b, err := os.ReadFile(filepath.Join(w.dir, "gw.log")); err == nil {
			fmt.Fprintf(os.Stderr, "gateway log:\n%s\n", b)
		}
		return 1
	}
	fmt.Fprintf(os.Stderr, "lab: world and %s up in %v\n", w.gateway, time.Since(start).Round(time.Millisecond))
	if b, err := os.ReadFile(filepath.Join(w.dir, "gw.pid")); err == nil {
		w.stdPID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if w.gateway == "fobgw" {
		conf, err := os.ReadFile(filepath.Join(w.dir, "fobgw.conf"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: the lab's fobgw.conf:", err)
			return 1
		}
		w.stdConf = string(conf)
	}
	if d := w.drift(); len(d) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the lab just brought up is not the standard world: %s\n%s\n", strings.Join(d, "; "), w.diagnosis())
		return 1
	}
	lab = w
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "the lab after the tests:\n%s\n", w.diagnosis())
	}
	return code
}

// TestPublicAddresses: the client's traffic leaves through the home router, the gateway's own
// through the local ISP.
func TestPublicAddresses(t *testing.T) {
	lab.standard(t)
	for _, tc := range []struct {
		name, ns, want string
	}{
		{"client leaves through BEG", "client", lab.begAddress(t)},
		{"gateway's own leaves through the local ISP", "muc", ispPublic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := publicAddress(tc.ns)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("web sees %s coming from %s, want %s", tc.ns, got, tc.want)
			}
		})
	}
}

// TestHomeConfig: beg is configured with exactly the allowed addresses `fobgw home-config` prints.
func TestHomeConfig(t *testing.T) {
	lab.standard(t)
	out, err := ns("muc", filepath.Join(lab.bin, "fobgw"), "home-config", "-config", filepath.Join(lab.dir, "fobgw.conf"), "-format", "wg-quick")
	if err != nil {
		t.Fatal(err)
	}
	if pub := lab.fileString(t, "fob.pub"); !strings.Contains(out, pub) {
		t.Errorf("home-config does not name the FOB's public key %s:\n%s", pub, out)
	}
	var printed []string
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "AllowedIPs") {
			for _, p := range strings.Split(v, ",") {
				printed = append(printed, strings.TrimSpace(p))
			}
		}
	}
	configured := strings.Fields(mustNS(t, "beg", "wg", "show", wgName("begwg0"), "allowed-ips"))[1:]
	slices.Sort(printed)
	slices.Sort(configured)
	if !slices.Equal(printed, configured) {
		t.Errorf("home-config prints AllowedIPs %v, the home router has %v:\n%s", printed, configured, out)
	}
}

// TestDNSThroughHomePihole: the client's lookups are answered by the home Pi-hole, over UDP and TCP.
func TestDNSThroughHomePihole(t *testing.T) {
	lab.standard(t)
	// The local ISP's resolver answers differently: a leak would show.
	if got, err := dig("muc", "192.168.2.1", "tv.example", false); err != nil || !slices.Equal(got, []string{germanCDN}) {
		t.Fatalf("control: the ISP resolver answers tv.example with %v (%v), want %s", got, err, germanCDN)
	}
	for _, tc := range []struct {
		name string
		tcp  bool
		want string
	}{
		{"tv.example", false, homeCDN},
		{"tv.example", true, homeCDN},
		{"ads.example", false, "0.0.0.0"},
		{"ads.example", true, "0.0.0.0"},
	} {
		proto := map[bool]string{false: "udp", true: "tcp"}[tc.tcp]
		t.Run(tc.name+"/"+proto, func(t *testing.T) {
			got, err := dig("client", "192.168.86.1", tc.name, tc.tcp)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, []string{tc.want}) {
				t.Errorf("client asks 192.168.86.1 over %s for %s: got %v, want [%s] (the home Pi-hole's answer)", proto, tc.name, got, tc.want)
			}
		})
	}
}

// TestNoDNSToWAN: the forwarder answers nobody on the WAN side, at the gateway's WAN address
// nor at its LAN address reached from the WAN.
func TestNoDNSToWAN(t *testing.T) {
	lab.standard(t)
	// Let net reach the FOB LAN's addresses through muc, as a hostile ISP could.
	mustNS(t, "net", "ip", "route", "add", "192.168.86.0/24", "via", "192.168.2.2")
	t.Cleanup(func() {
		if _, err := ns("net", "ip", "route", "del", "192.168.86.0/24", "via", "192.168.2.2"); err != nil {
			t.Error(err)
		}
	})
	// Control: from the LAN, the same query gets an answer, so dig's output shows one.
	if out, _ := ns("client", "dig", "+time=2", "+tries=1", "@192.168.86.1", "tv.example"); !strings.Contains(out, "Got answer") {
		t.Fatalf("control: the client gets no answer from 192.168.86.1:\n%s", out)
	}
	for _, server := range []string{"192.168.2.2", "192.168.86.1"} {
		for _, proto := range []string{"udp", "tcp"} {
			t.Run(server+"/"+proto, func(t *testing.T) {
				args := []string{"dig", "+time=2", "+tries=1", "@" + server, "tv.example"}
				if proto == "tcp" {
					args = append(args, "+tcp")
				}
				out, _ := ns("net", args...)
				if strings.Contains(out, "Got answer") {
					t.Errorf("the WAN side got a DNS answer from %s over %s:\n%s", server, proto, out)
				}
			})
		}
	}
}

// TestWgShow: `wg show` works against the running gateway and shows the home peer with a handshake.
func TestWgShow(t *testing.T) {
	lab.standard(t)
	out := mustNS(t, "muc", "wg", "show", lab.iface)
	for _, want := range []string{
		"peer: " + lab.fileString(t, "beg.pub"),
		"endpoint: " + lab.begAddress(t) + ":13231",
		"latest handshake:",
		"allowed ips: 0.0.0.0/0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("wg show %s lacks %q:\n%s", lab.iface, want, out)
		}
	}
}

// TestBlackHole: the PMTUD black hole of the story is real, and the clamp fixes it: the client's
// SYN reaches web with MSS 1380 (tunnel MTU 1420 - 40) and a 256 KiB download completes.
func TestBlackHole(t *testing.T) {
	lab.standard(t)
	download := func(maxTime string) (string, error) {
		return ns("client", "curl", "-sS", "--max-time", maxTime, "-o", "/dev/null", "-w", "%{size_download}",
			fmt.Sprintf("%s/big?size=%d", webURL, bigSize))
	}
	t.Run("without clamp the download hangs", func(t *testing.T) {
		t.Cleanup(func() { lab.restore(t) }) // the next subtest wants the clamp
		lab.labEnv(t, stdEnv, "gw", lab.gateway, "off")
		out, err := download("4")
		if err == nil {
			t.Fatalf("with ClampMSS off a %d-byte download through the black hole completed (%s bytes): the lab's black hole is not real", bigSize, out)
		}
		// It must hang (curl's timeout, exit 28) after the connection was made, not be refused.
		if !strings.Contains(err.Error(), "exit status 28") {
			t.Fatalf("with ClampMSS off the download failed, but not by hanging: %v", err)
		}
		t.Logf("hung as in the story: %v", err)
	})
	t.Run("with clamp it completes", func(t *testing.T) {
		syn := captureFirst(t, "web", "eth0", "tcp dst port 80 and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn")
		out, err := download("15")
		if err != nil {
			t.Fatalf("download through the clamped tunnel: %v", err)
		}
		if strings.TrimSpace(out) != fmt.Sprint(bigSize) {
			t.Errorf("downloaded %s bytes, want %d", out, bigSize)
		}
		line, err := syn.wait(5 * time.Second)
		if err != nil {
			t.Fatalf("SYN at web: %v", err)
		}
		m := regexp.MustCompile(`mss (\d+)`).FindStringSubmatch(line)
		if m == nil || m[1] != "1380" {
			t.Errorf("the client's SYN reaches web with %v, want mss 1380:\n%s", m, line)
		}
	})
}

// TestStrictRPFilter: the gateway works where the system has strict reverse-path filtering.
func TestStrictRPFilter(t *testing.T) {
	lab.standard(t)
	old := strings.TrimSpace(mustNS(t, "muc", "sysctl", "-n", "net.ipv4.conf.all.rp_filter"))
	t.Cleanup(func() {
		if _, err := ns("muc", "sysctl", "-qw", "net.ipv4.conf.all.rp_filter="+old); err != nil {
			t.Error(err)
		}
	})
	mustNS(t, "muc", "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1")
	lab.labEnv(t, stdEnv, "gw", lab.gateway, "auto") // started on a system that was strict from boot
	if got, err := publicAddress("client"); err != nil || got != lab.begAddress(t) {
		t.Errorf("with rp_filter=1 the client's request to web: %q, %v; want it from %s", got, err, lab.begAddress(t))
	}
	if got, err := dig("client", "192.168.86.1", "tv.example", false); err != nil || !slices.Equal(got, []string{homeCDN}) {
		t.Errorf("with rp_filter=1 the client's lookup: %v, %v; want [%s]", got, err, homeCDN)
	}
}

// TestKillSwitch: after kill -9 of the gateway the client gets nothing, and not one packet of the
// LAN reaches the WAN link; a restart over the crashed run's leftovers works and leaves one rule.
func TestKillSwitch(t *testing.T) {
	lab.standard(t)
	const leak, toWeb, other = "lan_src", "to_web", "other"
	resetCounters := func() {
		mustNS(t, "net", "nft", "reset", "counters", "table", "ip", "fobl-watch")
	}
	// Control: the counters count (the gateway's own request to web crosses the WAN link).
	resetCounters()
	if _, err := publicAddress("muc"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{toWeb, other} {
		if n := counter(t, "net", "fobl-watch", c); n == 0 {
			t.Fatalf("control: the WAN link's counter %s did not see muc's own request to web", c)
		}
	}

	// Control: the same pings get answers while the gateway runs.
	pings := []string{"203.0.113.80", "192.168.88.1", "198.51.100.1"}
	for _, dst := range pings {
		mustNS(t, "client", "ping", "-n", "-c", "1", "-W", "2", dst)
	}

	lab.killGateway(t)
	resetCounters()

	t.Run("client gets nothing", func(t *testing.T) {
		// The kill switch's unreachable route answers with ICMP host unreachable, so curl usually
		// fails at once; the kernel rate-limits those messages per host (about one a second after
		// a burst of five), so a client that already drew some may wait out its timeout instead.
		start := time.Now()
		if out, err := ns("client", "curl", "-sS", "--max-time", "5", webURL+"/ip"); err == nil {
			t.Errorf("after kill -9 the client still reaches web: %s", out)
		} else {
			t.Logf("curl failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
		}
		for _, dst := range pings {
			if out, err := ns("client", "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", dst); err == nil {
				t.Errorf("after kill -9 the client still pings %s:\n%s", dst, out)
			}
		}
		if got, err := dig("client", "192.168.86.1", "tv.example", false); err == nil && len(got) > 0 {
			t.Errorf("after kill -9 the client still gets DNS answers: %v", got)
		}
	})
	t.Run("nothing on the WAN link", func(t *testing.T) {
		for _, c := range []string{leak, toWeb, other} {
			if n := counter(t, "net", "fobl-watch", c); n != 0 {
				t.Errorf("after kill -9, %d packets (counter %s) crossed the WAN link while the client tried to get out", n, c)
			}
		}
	})
	t.Run("restart over the leftovers", func(t *testing.T) {
		lab.labEnv(t, stdEnv, "gw-over", lab.gateway, "auto")
		if got, err := publicAddress("client"); err != nil || got != lab.begAddress(t) {
			t.Errorf("after the restart the client's request to web: %q, %v; want it from %s", got, err, lab.begAddress(t))
		}
		rules := mustNS(t, "muc", "ip", "-4", "rule", "show")
		n := 0
		for _, line := range strings.Split(rules, "\n") {
			if strings.Contains(line, "from 192.168.86.0/24") && strings.Contains(line, "lookup 100") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("after the restart %d rules send the LAN to table 100, want 1:\n%s", n, rules)
		}
	})
}

// TestKillSwitchOtherSources: a LAN device whose address is not of the LAN (a static address of
// another network) reaches nothing through the local ISP: not one of its packets to web crosses
// the WAN link, neither while the gateway runs nor after kill -9.
func TestKillSwitchOtherSources(t *testing.T) {
	lab.standard(t)
	const other = "10.99.0.5"
	mustNS(t, "client", "ip", "addr", "add", other+"/32", "dev", "eth0")
	t.Cleanup(func() { mustNS(t, "client", "ip", "addr", "del", other+"/32", "dev", "eth0") })
	resetCounters := func() {
		mustNS(t, "net", "nft", "reset", "counters", "table", "ip", "fobl-watch")
	}
	// Control: the counter counts (the gateway's own request to web crosses the WAN link).
	resetCounters()
	if _, err := publicAddress("muc"); err != nil {
		t.Fatal(err)
	}
	if n := counter(t, "net", "fobl-watch", "to_web"); n == 0 {
		t.Fatal("control: the WAN link's counter to_web did not see muc's own request to web")
	}
	// Control: the gateway routes such a packet into the tunnel (without the rule it took the WAN;
	// a strict rp_filter on br0 would drop it before routing and hide a leak from the counter).
	if got := mustNS(t, "muc", "ip", "route", "get", "203.0.113.80", "from", other, "iif", "br0"); !strings.Contains(got, "dev "+lab.iface+" ") {
		t.Errorf("muc routes 203.0.113.80 from %s on br0 as %q, want it into %s", other, strings.TrimSpace(got), lab.iface)
	}
	try := func(when string) {
		t.Helper()
		resetCounters()
		out, err := ns("client", "ping", "-n", "-I", other, "-c", "3", "-i", "0.2", "-W", "1", "203.0.113.80")
		if err == nil {
			t.Errorf("%s: the client pings web from %s, which is not of the LAN:\n%s", when, other, out)
		}
		if n := counter(t, "net", "fobl-watch", "to_web"); n != 0 {
			t.Errorf("%s: %d packets from %s to web crossed the WAN link", when, n, other)
		}
	}
	try("gateway running")
	lab.killGateway(t)
	try("after kill -9")
}

// TestHomeAddressChange: the home router's public address changes and its DDNS record follows;
// the client is through again within 30 s. standard's cleanup moves the home router back.
func TestHomeAddressChange(t *testing.T) {
	lab.standard(t)
	const bar = 30 * time.Second
	// The tunnel as it runs: home has answered a probe. standard may have just started the
	// gateway, and until the probe target first answers, bytes received from home count as a
	// sign of life (a target might drop probes), which would hold the healer back for another
	// 13 s here: a move in a gateway's first seconds, not the move this test measures.
	waitFor(t, "a probe answered through the tunnel", 15*time.Second, func() error {
		if st := lab.status(t); st.LastProbeOK.IsZero() {
			return fmt.Errorf("no probe answered yet")
		}
		return nil
	})
	to := begMoved
	start := time.Now()
	lab.lab(t, "ddns-move", to)
	waitFor(t, "the client through the moved home router", bar+15*time.Second, func() error {
		got, err := publicAddress("client")
		if err != nil {
			return err
		}
		if got != to {
			return fmt.Errorf("web sees the client from %s", got)
		}
		return nil
	})
	d := time.Since(start)
	t.Logf("the client was through the moved home router after %v", d.Round(100*time.Millisecond))
	if d > bar {
		t.Errorf("the client was through again only after %v, want within %v", d, bar)
	}
}
