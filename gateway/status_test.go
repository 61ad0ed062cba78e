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
		Buffers:      &BuffersStatus{Pool: 1536, Waits: 26, DroppedNoRoom: 27, DroppedTooLarge: 28},
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
	for _, key := range []string{`"tunnel_up":true`, `"handshake_age_seconds":30`, `"endpoint_name":"home.example.net"`, `"endpoint_records":["198.51.100.2"]`, `"clamped_out":3`, `"buffers":{"pool":1536,"waits":26,"dropped_no_room":27,"dropped_too_large":28}`, `"route_repairs":16`, `"probe_misses":1`,
		`"endpoint_entry":"home.example.net:13231"`, `"endpoint_entry_switches":22`, `"lan_path":{"ok":false,"source":"192.168.86.1","probes":24`,
		`"masquerade":true`, `"clock":{"synced":false`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("JSON lacks %s: %s", key, data)
		}
	}
	in.AtHome, in.AwayReason = false, "The gateway reaches home, but the LAN does not: x."
	var b bytes.Buffer
	if err := in.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"at home:          no: The gateway reaches home, but the LAN does not: x.", "tunnel:           up", "198.51.100.2:13231 from home.example.net", "3 out, 4 in", "packet buffers:   1536 at most; 26 waits for a free one (the traffic outran the CPU), 27 packets dropped for lack of room, 28 too large for one", "route repairs:    16",
		"endpoint entry:   home.example.net:13231 (first entry); 22 switches", "lan path:         BROKEN: the home peer must allow 192.168.86.0/24",
		"masquerade:       on", "clock:            clock not synchronised"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("text lacks %q:\n%s", w, b.String())
		}
	}
}

// TestHomeVerdict: the one "at home" rule, and the reason given when not:
// a handshake, the tunnel up, a probe answered and none missing now, and
// the LAN path not broken (not probed yet is not broken).
func TestHomeVerdict(t *testing.T) {
	now := time.Date(2026, 11, 28, 16, 15, 30, 0, time.UTC)
	home := func() *Status {
		return &Status{Time: now, TunnelUp: true, LastHandshake: now.Add(-12 * time.Second),
			HealerStatus: health.HealerStatus{LastProbeOK: now.Add(-time.Second)},
			LANPath:      &health.LANPathStatus{OK: true, Probes: 3}}
	}
	for _, tc := range []struct {
		name   string
		change func(*Status)
		why    string // "" when at home
	}{
		{"at home", func(s *Status) {}, ""},
		{"LAN path not run", func(s *Status) { s.LANPath = nil }, ""},
		{"LAN path not probed yet", func(s *Status) { s.LANPath = &health.LANPathStatus{} }, ""},
		{"never shook hands", func(s *Status) {
			s.TunnelUp, s.LastHandshake, s.LastProbeOK, s.ProbeMisses = false, time.Time{}, time.Time{}, 4
		}, "No handshake with the home router yet."},
		{"tunnel down", func(s *Status) { s.TunnelUp, s.LastHandshake = false, now.Add(-200*time.Second) },
			"The tunnel is down: the last handshake was 3m20s ago."},
		{"no probe answered yet", func(s *Status) { s.LastProbeOK = time.Time{} },
			"The tunnel is up; no probe through it has been answered yet."},
		{"probes unanswered", func(s *Status) { s.ProbeMisses = 3 },
			"The tunnel is up, but the probes through it go unanswered (3 in a row)."},
		{"LAN path broken", func(s *Status) { s.LANPath = &health.LANPathStatus{Probes: 3, Reason: "allow 192.168.86.0/24"} },
			"The gateway reaches home, but the LAN does not: allow 192.168.86.0/24."},
	} {
		s := home()
		tc.change(s)
		atHome, why := homeVerdict(s)
		if atHome != (tc.why == "") || why != tc.why {
			t.Errorf("%s: at home %v, %q; want %q", tc.name, atHome, why, tc.why)
		}
	}
}

// TestStatusJSONVerdict: `fobgw status -json` carries the verdict under the
// names the lab's tests read: at_home and away_reason.
func TestStatusJSONVerdict(t *testing.T) {
	for _, s := range []*Status{{AtHome: true}, {AwayReason: "No handshake with the home router yet."}} {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		if m["at_home"] != s.AtHome || m["away_reason"] != s.AwayReason {
			t.Errorf("JSON %s: at_home %v, away_reason %v; want %v, %q", b, m["at_home"], m["away_reason"], s.AtHome, s.AwayReason)
		}
	}
}
