package dnsfwd

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDNSPerf runs dnsperf (-c 4 -q 500) on loopback against the forwarder and, if installed, against
// dnsmasq forwarding to the same in-process upstream, in alternated rounds, and logs the median
// queries/s of each. It is a measurement, not a check, so it only runs when asked:
//
//	FOBGW_DNSPERF=1 go test -run DNSPerf -v ./dnsfwd/
//
// FOBGW_DNSPERF_SECONDS sets the length of a round (default 6), FOBGW_DNSPERF_QPS a steady rate (-Q).
func TestDNSPerf(t *testing.T) {
	if os.Getenv("FOBGW_DNSPERF") == "" {
		t.Skip("measurement: set FOBGW_DNSPERF=1 to run dnsperf on loopback")
	}
	dnsperf, err := exec.LookPath("dnsperf")
	if err != nil {
		t.Fatalf("FOBGW_DNSPERF set but dnsperf not found: %v", err)
	}
	secs := 6
	if s, err := strconv.Atoi(os.Getenv("FOBGW_DNSPERF_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	const rounds = 3
	up := benchUpstream(t)
	dir := t.TempDir()
	same := filepath.Join(dir, "same")
	if err := os.WriteFile(same, []byte("bench.example A\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range 200000 {
		fmt.Fprintf(&b, "u%d.example A\n", i)
	}
	unique := filepath.Join(dir, "unique")
	if err := os.WriteFile(unique, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(server netip.AddrPort, data string) (qps float64, lost string) {
		args := []string{"-s", server.Addr().String(), "-p", strconv.Itoa(int(server.Port())),
			"-d", data, "-c", "4", "-q", "500", "-l", strconv.Itoa(secs)}
		if q := os.Getenv("FOBGW_DNSPERF_QPS"); q != "" { // a steady rate instead of as fast as possible
			args = append(args, "-Q", q)
		}
		out, err := exec.Command(dnsperf, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dnsperf: %v\n%s", err, out)
		}
		m := regexp.MustCompile(`Queries per second:\s+([0-9.]+)`).FindSubmatch(out)
		l := regexp.MustCompile(`Queries lost:\s+(\S+ \S+)`).FindSubmatch(out)
		if m == nil || l == nil {
			t.Fatalf("dnsperf output not understood:\n%s", out)
		}
		qps, _ = strconv.ParseFloat(string(m[1]), 64)
		return qps, string(l[1])
	}
	cases := []struct {
		name   string
		cached bool
		data   string
	}{
		{"uncached-unique", false, unique}, // every query forwarded upstream
		{"uncached-same", false, same},     // one name: identical queries in flight coalesce (both)
		{"cached", true, same},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := startForwarder(t, up, func(c *Config) {
				if !tc.cached {
					c.CacheSize = -1
				}
			})
			servers := map[string]netip.AddrPort{"fobgw": f.Addr()}
			if dm, err := exec.LookPath("dnsmasq"); err == nil {
				servers["dnsmasq"] = startDnsmasq(t, dm, up, tc.cached)
			}
			results := map[string][]float64{}
			for range rounds {
				for _, name := range []string{"fobgw", "dnsmasq"} {
					if s, ok := servers[name]; ok {
						qps, lost := run(s, tc.data)
						results[name] = append(results[name], qps)
						t.Logf("%s %s: %.0f queries/s, lost %s", name, t.Name(), qps, lost)
						if name == "fobgw" {
							t.Logf("fobgw stats: %+v", f.Stats())
						}
					}
				}
			}
			for name, r := range results {
				slices.Sort(r)
				t.Logf("median %s %s: %.0f queries/s over %d rounds of %d s", name, tc.name, r[len(r)/2], len(r), secs)
			}
		})
	}
}

// startDnsmasq runs dnsmasq on 127.0.0.1 (a free port) forwarding to up, cache 10000 or none.
func startDnsmasq(tb testing.TB, path string, up netip.AddrPort, cached bool) netip.AddrPort {
	tb.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		tb.Fatal(err)
	}
	addr := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	size := "0"
	if cached {
		size = "10000"
	}
	cmd := exec.Command(path, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address=127.0.0.1", "--except-interface=nonexistent", fmt.Sprintf("--port=%d", addr.Port()),
		fmt.Sprintf("--server=%s#%d", up.Addr(), up.Port()), "--cache-size="+size, "--user=root", "--pid-file=",
		"--conf-file=/dev/null")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start dnsmasq: %v", err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// dnsmasq says nothing when it listens: trying to connect is the wait.
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) { // see above
		if c, err := net.Dial("tcp", addr.String()); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			tb.Fatalf("dnsmasq did not start on %s: %s", addr, stderr.String())
		}
	}
}
