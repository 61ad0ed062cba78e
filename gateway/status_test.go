package gateway

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fobgw/fobgw/clock"
	"github.com/fobgw/fobgw/dnsfwd"
	"github.com/fobgw/fobgw/health"
)

func TestStatusJSONRoundTrip(t *testing.T) {
	in := &Status{
		Name: "fobgw0", Time: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), TunnelUp: true, ListenPort: 13231,
		LastHandshake: time.Date(2026, 11, 25, 11, 59, 30, 0, time.UTC), HandshakeAgeSeconds: 30,
		Endpoint: "198.51.100.2:13231",
		RxBytes:  1, TxBytes: 2, Clamp: ClampStatus{Enabled: true, ClampedOut: 3, ClampedIn: 4, Malformed: 5},
		DNS:          dnsfwd.Stats{Queries: 6, OK: 7, NXDomain: 8, ServFail: 9, Dropped: 10, CacheHits: 11, CacheMisses: 12, UpstreamTimeouts: 13, UpstreamErrors: 14, InFlight: 15},
		RouteRepairs: 16,
		HealerStatus: health.HealerStatus{EndpointName: "home.example.net", EndpointRecords: []netip.Addr{netip.MustParseAddr("198.51.100.2")},
			ProbeMisses: 1, ProbeMissesTotal: 17, Probes: 18, EndpointChanges: 19, Reresolutions: 20, ResolveFailures: 21,
			LastProbeOK:   time.Date(2026, 11, 25, 11, 59, 59, 0, time.UTC),
			EndpointEntry: "home.example.net:13231", EndpointEntryReason: "first entry", EndpointEntrySwitches: 22, EndpointEntryTrials: 23,
			Clock: &clock.State{Synced: false, Reason: "clock not synchronised: handshakes may be rejected until NTP has synced", MaxError: 16,
				Now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Build: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}},
		LANPath: &health.LANPathStatus{OK: false, Source: "192.168.86.1", Probes: 24, Misses: 25,
			Reason: "the home peer must allow 192.168.86.0/24: `fobgw home-config` prints it, or set Masquerade = on"},
		Masquerade: true,
		LastError:  "x",
	}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Status
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, &out) {
		t.Errorf("round trip:\n in %+v\nout %+v", in, &out)
	}
	for _, key := range []string{`"tunnel_up":true`, `"handshake_age_seconds":30`, `"endpoint_name":"home.example.net"`, `"endpoint_records":["198.51.100.2"]`, `"clamped_out":3`, `"route_repairs":16`, `"probe_misses":1`,
		`"endpoint_entry":"home.example.net:13231"`, `"endpoint_entry_switches":22`, `"lan_path":{"ok":false,"source":"192.168.86.1","probes":24`,
		`"masquerade":true`, `"clock":{"synced":false`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("JSON lacks %s: %s", key, data)
		}
	}
	var b bytes.Buffer
	if err := in.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"tunnel:           up", "198.51.100.2:13231 from home.example.net", "3 out, 4 in", "route repairs:    16",
		"endpoint entry:   home.example.net:13231 (first entry); 22 switches", "lan path:         BROKEN: the home peer must allow 192.168.86.0/24",
		"masquerade:       on", "clock:            clock not synchronised"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("text lacks %q:\n%s", w, b.String())
		}
	}
}

// TestLANPathBrokenOnPage: the status page is told the LAN path is broken
// when its last probe went unanswered, and only then.
func TestLANPathBrokenOnPage(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    *health.LANPathStatus
		want string
	}{
		{"not run", nil, ""},
		{"not probed yet", &health.LANPathStatus{}, ""},
		{"answered", &health.LANPathStatus{OK: true, Probes: 3}, ""},
		{"unanswered", &health.LANPathStatus{Probes: 3, Reason: "allow 192.168.86.0/24"}, "allow 192.168.86.0/24"},
	} {
		if got := lanPathBroken(tc.l); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
