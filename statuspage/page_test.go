package statuspage

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// home is a snapshot of a gateway at home since 14:02 UTC, read at 16:15:30.
func home() Snapshot {
	now := time.Date(2026, 11, 28, 16, 15, 30, 0, time.UTC)
	return Snapshot{
		Name: "fobgw0", Time: now,
		TunnelUp: true, LastHandshake: now.Add(-12 * time.Second),
		Endpoint: "198.51.100.2:13231", EndpointName: "home.example",
		RxBytes: 1288490189, TxBytes: 314572800,
		AtHome:     true,
		DNS:        DNS{Answers: 4821, CacheHits: 2210, Failures: 3},
		KillSwitch: true, RouteRepairs: 2, EndpointChanges: 1,
	}
}

// samplerFor returns a sampler that saw the gateway at home from since on,
// with traffic rising to 8 Mbit/s in and 1 Mbit/s out over the last minutes
// before now, and one stretch away between 14 and 12 minutes before now.
func samplerFor(since, now time.Time) *Sampler {
	s := NewSampler(5 * time.Second)
	s.Sample(since, 0, 0, true)
	var rx, tx uint64
	start := now.Add(-Window)
	for i := 0; i <= int(Window/(5*time.Second)); i++ {
		t := start.Add(time.Duration(i) * 5 * time.Second)
		ago := now.Sub(t)
		away := ago <= 14*time.Minute && ago > 12*time.Minute
		if ago < 5*time.Minute {
			rx += 5e6 // 8 Mbit/s
			tx += 625e3
		} else {
			rx += 5e5
			tx += 5e4
		}
		s.Sample(t, rx, tx, !away)
	}
	return s
}

func get(t testing.TB, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func body(t testing.TB, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// byID is the text of the element with id in page (tags stripped).
func byID(t testing.TB, page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)id="` + regexp.QuoteMeta(id) + `"[^>]*>(.*?)</`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no element with id %q in the page", id)
	}
	return m[1]
}

func TestPageAtHome(t *testing.T) {
	s := home()
	since := time.Date(2026, 11, 28, 14, 2, 0, 0, time.UTC)
	p := NewPage(func() Snapshot { return s }, samplerFor(since, s.Time), nil, nil)
	r := get(t, p, "GET", "/")
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %s, %s", r.Status, r.Header.Get("Content-Type"))
	}
	page := body(t, r)
	for id, want := range map[string]string{
		"headline":         "At home",
		"handshake":        "12 s ago",
		"endpoint":         "198.51.100.2:13231 (home.example)",
		"rx":               "1.20 GiB",
		"tx":               "300.00 MiB",
		"dns-answers":      "4821",
		"dns-cache-hits":   "2210",
		"dns-failures":     "3",
		"killswitch":       "on: the LAN&#39;s traffic leaves only through the tunnel",
		"repairs":          "2",
		"endpoint-changes": "1",
	} {
		if got := byID(t, page, id); got != want {
			t.Errorf("#%s says %q, want %q", id, got, want)
		}
	}
	// The sampler saw it away until 12 min ago: at home since then.
	if got, want := byID(t, page, "since"), "since 16:03 (12 min)"; got != want {
		t.Errorf("#since says %q, want %q", got, want)
	}
	for _, want := range []string{
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`<meta http-equiv="refresh" content="10">`,
		`<title>At home · fobgw fobgw0</title>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(page, `id="why"`) {
		t.Error("the page explains why it is not at home while it is")
	}
	if strings.Contains(strings.ToLower(page), "<script") {
		t.Error("the page has a script")
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q does not forbid scripts", csp)
	}
}

// TestPageNotAtHome: the page shows the gateway's verdict and its reason
// as the Snapshot brings them (the rule itself is gateway's, tested there).
func TestPageNotAtHome(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Snapshot)
		why    string
		kill   string
	}{
		{"tunnel down", func(s *Snapshot) {
			s.TunnelUp, s.AtHome, s.AwayReason = false, false, "The tunnel is down: the last handshake was 3m20s ago."
		}, "The tunnel is down: the last handshake was 3m20s ago.", "on, holding"},
		{"lan path broken", func(s *Snapshot) {
			s.AtHome, s.AwayReason = false, "The gateway reaches home, but the LAN does not: the home peer must allow 192.168.86.0/24."
		}, "The gateway reaches home, but the LAN does not: the home peer must allow 192.168.86.0/24.", "on, holding"},
		{"kill switch off", func(s *Snapshot) {
			s.AtHome, s.AwayReason, s.KillSwitch = false, "The tunnel is up, but the probes through it go unanswered (3 in a row).", false
		}, "The tunnel is up, but the probes through it go unanswered (3 in a row).", "off: when the tunnel is down"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := home()
			tc.change(&s)
			sm := NewSampler(5 * time.Second)
			sm.Sample(s.Time.Add(-5*time.Minute), 0, 0, true)
			sm.Sample(s.Time.Add(-2*time.Minute), 0, 0, false)
			page := body(t, get(t, NewPage(func() Snapshot { return s }, sm, nil, nil), "GET", "/"))
			if got := byID(t, page, "headline"); got != "Not at home" {
				t.Errorf("#headline %q", got)
			}
			if got := byID(t, page, "why"); got != tc.why {
				t.Errorf("#why %q, want %q", got, tc.why)
			}
			if got := byID(t, page, "since"); got != "since 16:13 (2 min)" {
				t.Errorf("#since %q", got)
			}
			if got := byID(t, page, "killswitch"); !strings.HasPrefix(got, tc.kill) {
				t.Errorf("#killswitch %q, want it to begin %q", got, tc.kill)
			}
			if !strings.Contains(page, `<header>`) || strings.Contains(page, `class="home"`) {
				t.Error("the header is not the not-at-home one")
			}
		})
	}
}

// TestPageSinceUnknown: before the sampler agrees with the snapshot (no
// sample yet, or the state changed since the last one) the page does not
// guess since when.
func TestPageSinceUnknown(t *testing.T) {
	s := home()
	sm := NewSampler(5 * time.Second)
	p := NewPage(func() Snapshot { return s }, sm, nil, nil)
	if page := body(t, get(t, p, "GET", "/")); strings.Contains(page, `id="since"`) {
		t.Error("a since without samples")
	}
	sm.Sample(s.Time.Add(-time.Minute), 0, 0, false)
	if page := body(t, get(t, p, "GET", "/")); strings.Contains(page, `id="since"`) {
		t.Error("a since from a sample that saw the other state")
	}
}

// TestChart: the SVG has a path per direction with a point per rate, the
// axis labels, the away stretch, and the legend with the latest rates.
func TestChart(t *testing.T) {
	s := home()
	sm := samplerFor(s.Time.Add(-time.Hour), s.Time)
	page := body(t, get(t, NewPage(func() Snapshot { return s }, sm, nil, nil), "GET", "/"))
	svg := regexp.MustCompile(`(?s)<svg id="chart".*?</svg>`).FindString(page)
	if svg == "" {
		t.Fatal("no chart")
	}
	n := len(sm.Rates(nil, s.Time))
	if n != 180 {
		t.Fatalf("%d rates, want 180 (15 min every 5 s)", n)
	}
	paths := regexp.MustCompile(`<path class="line (in|out)" d="([^"]*)"/>`).FindAllStringSubmatch(svg, -1)
	if len(paths) != 2 {
		t.Fatalf("%d line paths, want in and out:\n%s", len(paths), svg)
	}
	pt := regexp.MustCompile(`([ML])(-?[0-9.]+) (-?[0-9.]+)`)
	for _, m := range paths {
		pts := pt.FindAllStringSubmatch(m[2], -1)
		if len(pts) != n {
			t.Errorf("%s line: %d points, want %d", m[1], len(pts), n)
			continue
		}
		if pts[0][1] != "M" {
			t.Errorf("%s line does not start with M", m[1])
		}
		lastX, _ := strconv.ParseFloat(pts[n-1][2], 64)
		lastY, _ := strconv.ParseFloat(pts[n-1][3], 64)
		firstY, _ := strconv.ParseFloat(pts[0][3], 64)
		if lastX != plotR {
			t.Errorf("%s line ends at x %v, want the right edge %v (now)", m[1], lastX, plotR)
		}
		for _, p := range pts {
			x, _ := strconv.ParseFloat(p[2], 64)
			y, _ := strconv.ParseFloat(p[3], 64)
			if x < plotL || x > plotR || y < plotT || y > plotB {
				t.Errorf("%s point %v,%v outside the plot", m[1], x, y)
			}
		}
		// The scale's top is 10 Mbit/s (8 rounded up to 1, 2 or 5 times a power of ten).
		if want := plotB - 0.8*(plotB-plotT); m[1] == "in" && (lastY != want || firstY <= lastY) {
			t.Errorf("in line: 8 Mbit/s at the end should be at y %v, got %v; the start (%v) should be lower", want, lastY, firstY)
		}
	}
	for _, want := range []string{">10 Mbit/s</text>", ">5.0 Mbit/s</text>", ">0 bit/s</text>",
		">−15 min</text>", ">−10 min</text>", ">−5 min</text>", ">now</text>",
		">in 8.0 Mbit/s</text>", ">out 1.0 Mbit/s</text>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the chart lacks %s", want)
		}
	}
	if c := strings.Count(svg, `class="away"`); c != 1 {
		t.Errorf("%d away stretches, want 1", c)
	}
}

func TestChartEmpty(t *testing.T) {
	s := home()
	page := body(t, get(t, NewPage(func() Snapshot { return s }, NewSampler(0), nil, nil), "GET", "/"))
	if !strings.Contains(page, "collecting samples") || strings.Contains(page, `class="line`) {
		t.Error("a chart without samples should say it is collecting them and draw no line")
	}
}

// TestEscaping: names come from the configuration and from DNS; markup in
// them is shown as text, in the page and in its title.
func TestEscaping(t *testing.T) {
	s := home()
	s.EndpointName = `<script>alert(1)</script><img src=x onerror=alert(2)>"'&`
	s.Name = `fob<b>gw`
	s.Endpoint = `"><svg onload=alert(3)>`
	page := body(t, get(t, NewPage(func() Snapshot { return s }, NewSampler(0), nil, nil), "GET", "/"))
	for _, bad := range []string{"<script>", "<img", "<svg onload", "<b>gw"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q unescaped", bad)
		}
	}
	if got, want := byID(t, page, "endpoint"), `&#34;&gt;&lt;svg onload=alert(3)&gt; (&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&#34;&#39;&amp;)`; got != want {
		t.Errorf("#endpoint %q, want %q", got, want)
	}
}

func TestMethods(t *testing.T) {
	s := home()
	p := NewPage(func() Snapshot { return s }, NewSampler(0), nil, nil)
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"} {
		r := get(t, p, m, "/")
		if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /: %s, Allow %q; want 405 and GET, HEAD", m, r.Status, r.Header.Get("Allow"))
		}
	}
	if r := get(t, p, "HEAD", "/"); r.StatusCode != 200 {
		t.Errorf("HEAD /: %s", r.Status)
	}
	if r := get(t, p, "GET", "/admin"); r.StatusCode != 404 {
		t.Errorf("GET /admin: %s, want 404", r.Status)
	}
}

func TestJSON(t *testing.T) {
	s := home()
	r := get(t, NewPage(func() Snapshot { return s }, NewSampler(0), nil, nil), "GET", "/status.json")
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /status.json: %s, %s", r.Status, r.Header.Get("Content-Type"))
	}
	var got Snapshot
	if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Endpoint != s.Endpoint || got.DNS != s.DNS || !got.Time.Equal(s.Time) || got.RxBytes != s.RxBytes {
		t.Errorf("/status.json gives %+v, want %+v", got, s)
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{humanDuration(40 * time.Second), "40 s"},
		{humanDuration(5*time.Minute + 59*time.Second), "5 min"},
		{humanDuration(2*time.Hour + 13*time.Minute), "2 h 13 min"},
		{humanDuration(3 * time.Hour), "3 h"},
		{humanDuration(76 * time.Hour), "3 d 4 h"},
		{humanDuration(-time.Second), "0 s"},
		{bytesIEC(0), "0 B"},
		{bytesIEC(1023), "1023 B"},
		{bytesIEC(1536), "1.50 KiB"},
		{bitRate(850), "850 bit/s"},
		{bitRate(12345678), "12 Mbit/s"},
		{bitRate(2.5e9), "2.5 Gbit/s"},
		{clock(t0, t0.Add(time.Hour)), "14:02"},
		{clock(t0, t0.Add(24*time.Hour)), "28 Nov 14:02"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestPageBreakout: with the local breakout the page lists the bypassed
// devices, the local set and the local answers; without it, nothing.
func TestPageBreakout(t *testing.T) {
	s := home()
	if page := body(t, get(t, NewPage(func() Snapshot { return s }, samplerFor(s.Time, s.Time), nil, nil), "GET", "/")); strings.Contains(page, "Local breakout") {
		t.Error("the page shows a breakout that is not configured")
	}
	s.Breakout = &Breakout{LocalSet: 3, LocalAnswers: 17, Devices: []Device{
		{Name: "192.168.86.50", Seen: true, Bytes: 3 << 20},
		{Name: "02:11:22:33:44:55 (192.168.86.60)", Seen: true, Bytes: 2048},
		{Name: "192.168.86.70"},
	}}
	page := body(t, get(t, NewPage(func() Snapshot { return s }, samplerFor(s.Time, s.Time), nil, nil), "GET", "/"))
	for id, want := range map[string]string{"local-set": "3", "local-answers": "17"} {
		if got := byID(t, page, id); got != want {
			t.Errorf("#%s says %q, want %q", id, got, want)
		}
	}
	for _, want := range []string{
		"<dt>192.168.86.50</dt><dd class=\"bypass\">seen, 3.00 MiB through the local ISP</dd>",
		"<dt>02:11:22:33:44:55 (192.168.86.60)</dt><dd class=\"bypass\">seen, 2.00 KiB through the local ISP</dd>",
		"<dt>192.168.86.70</dt><dd class=\"bypass\">not seen, 0 B through the local ISP</dd>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
}
