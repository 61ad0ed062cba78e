package bench

import (
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pageStatus is the part of `fobgw status -json` the status page shows.
type pageStatus struct {
	Time                time.Time `json:"time"`
	AtHome              *bool     `json:"at_home"`     // the gateway's verdict, which the page shows
	AwayReason          string    `json:"away_reason"` // why not at home
	TunnelUp            bool      `json:"tunnel_up"`
	LastHandshake       time.Time `json:"last_handshake"`
	HandshakeAgeSeconds float64   `json:"handshake_age_seconds"`
	Endpoint            string    `json:"endpoint"`
	EndpointName        string    `json:"endpoint_name"`
	RxBytes             uint64    `json:"rx_bytes"`
	TxBytes             uint64    `json:"tx_bytes"`
	ProbeMisses         int       `json:"probe_misses"`
	LastProbeOK         time.Time `json:"last_probe_ok"`
	RouteRepairs        uint64    `json:"route_repairs"`
	EndpointChanges     uint64    `json:"endpoint_changes"`
	LANPath             *struct {
		OK     bool   `json:"ok"`
		Probes uint64 `json:"probes"`
	} `json:"lan_path"`
	DNS struct {
		OK        uint64 `json:"ok"`
		NXDomain  uint64 `json:"nxdomain"`
		ServFail  uint64 `json:"servfail"`
		Dropped   uint64 `json:"dropped"`
		CacheHits uint64 `json:"cache_hits"`
	} `json:"dns"`
}

// atHome is fobgw status's verdict on being at home. The rule is the
// gateway's alone: the test reads it, never computes it again.
func (s *pageStatus) atHome() bool { return *s.AtHome }

// gatewayStatus runs `fobgw status -json` at muc.
func gatewayStatus(t *testing.T) pageStatus {
	t.Helper()
	out := mustNS(t, "muc", filepath.Join(lab.bin, "fobgw"), "status", "-json", "-config", filepath.Join(lab.dir, "fobgw.conf"))
	var s pageStatus
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("fobgw status -json: %v\n%s", err, out)
	}
	if s.Endpoint == "" || s.Time.IsZero() {
		t.Fatalf("fobgw status -json lacks the endpoint or the time the page needs:\n%s", out)
	}
	if s.AtHome == nil {
		t.Fatalf("fobgw status -json has no \"at_home\": the page shows the gateway's verdict, and so must this test read it:\n%s", out)
	}
	return s
}

// pageText is the text of the element with id in the DOM Chromium dumped.
func pageText(t *testing.T, dom, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)id="` + regexp.QuoteMeta(id) + `"[^>]*>(.*?)</`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("the page has no element %q", id)
	}
	return strings.ReplaceAll(m[1], "&amp;", "&")
}

// between fails unless lo <= v <= hi (with slack for the page's rounding).
func between(t *testing.T, what string, v, lo, hi, slack float64) {
	t.Helper()
	if v < lo-slack || v > hi+slack {
		t.Errorf("the page says %s is %v; fobgw status said %v before the page was read and %v after", what, v, lo, hi)
	}
}

// pageBytes turns the page's "1.20 MiB" back into bytes, and says how far
// off its rounding can be.
func pageBytes(t *testing.T, s string) (v, slack float64) {
	t.Helper()
	f := strings.Fields(s)
	if len(f) != 2 {
		t.Fatalf("%q is not a byte count", s)
	}
	n, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	mult := map[string]float64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[f[1]]
	if mult == 0 {
		t.Fatalf("%q: unknown unit", s)
	}
	return n * mult, 0.005 * mult
}

// labChromium runs headless Chromium in the client's namespace on url with
// a phone's window and returns its stdout.
func labChromium(t *testing.T, url string, extra ...string) string {
	t.Helper()
	args := []string{"env", "HOME=" + t.TempDir(), "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir(), "--window-size=390,844"}
	return mustNS(t, "client", append(append(args, extra...), url)...)
}

// TestStatusPageInBrowser: with StatusListen = 192.168.86.1:80, headless
// Chromium in the client's namespace loads the status page; what it shows
// agrees with `fobgw status -json` read just before and after, and its
// screenshot (bench/out/statuspage-lab.png) shows the chart of the traffic
// the test made.
func TestStatusPageInBrowser(t *testing.T) {
	if lab.gateway != "fobgw" {
		t.Skipf("the %s gateway has no status page", lab.gateway)
	}
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Fatal("chromium is missing: install Debian's chromium (make deps)")
	}
	lab.standard(t) // its cleanup starts the lab's own gateway again
	lab.labEnv(t, []string{"FOBL_GW_EXTRA=StatusListen = 192.168.86.1:80"}, "gw", lab.gateway, "auto")

	const url = "http://192.168.86.1/"
	// Traffic through the tunnel for the chart: a download at every look
	// until the page's line has 4 points (samples are 5 s apart, on a
	// 15-minute axis, so the line stays short: statuspage's own browser
	// test shows a full one). Downloads all along keep every sample above
	// zero: a line of samples at zero lies on the axis, and the screenshot
	// below would find only its key (one download per new point left that
	// to chance: 35 pixels once, 129 another time).
	waitFor(t, "the page to draw the chart", 90*time.Second, func() error {
		if _, err := ns("client", "curl", "-fsS", "--max-time", "5", "-o", "/dev/null", fmt.Sprintf("%s/big?size=%d", webURL, bigSize)); err != nil {
			return err
		}
		out, err := ns("client", "curl", "-fsS", "--max-time", "2", url)
		if err != nil {
			return err
		}
		if n := linePoints(out); n < 4 {
			return fmt.Errorf("the chart's in line has %d points", n)
		}
		return nil
	})

	before := gatewayStatus(t)
	dom := labChromium(t, url, "--dump-dom")
	after := gatewayStatus(t)
	if before.atHome() != after.atHome() {
		t.Fatalf("at home changed while the page was read (%v, then %v): run again", before.atHome(), after.atHome())
	}
	want := "Not at home"
	if after.atHome() {
		want = "At home"
	}
	if got := pageText(t, dom, "headline"); got != want {
		t.Errorf("the page says %q, fobgw status says %q (away_reason %q)", got, want, after.AwayReason)
	}
	if got, want := pageText(t, dom, "endpoint"), after.Endpoint+" ("+after.EndpointName+")"; got != want {
		t.Errorf("the page's home router is %q, fobgw status says %q", got, want)
	}
	if got := pageText(t, dom, "since"); !strings.HasPrefix(got, "since ") {
		t.Errorf("the page says %q, want since when", got)
	}
	// Handshake age: "N s ago" or "N min ago".
	var n float64
	var unit string
	if _, err := fmt.Sscanf(pageText(t, dom, "handshake"), "%g %s ago", &n, &unit); err != nil {
		t.Errorf("handshake %q: %v", pageText(t, dom, "handshake"), err)
	} else {
		age, slack := n, 1.0
		if unit == "min" {
			age, slack = n*60, 60
		}
		// The page was read between the two statuses; a handshake may have
		// come in between.
		lo := min(before.HandshakeAgeSeconds, after.HandshakeAgeSeconds)
		hi := before.HandshakeAgeSeconds + after.Time.Sub(before.Time).Seconds()
		between(t, "the handshake age in seconds", age, lo, hi, slack)
	}
	rx, rxSlack := pageBytes(t, pageText(t, dom, "rx"))
	between(t, "the bytes received", rx, float64(before.RxBytes), float64(after.RxBytes), rxSlack)
	tx, txSlack := pageBytes(t, pageText(t, dom, "tx"))
	between(t, "the bytes sent", tx, float64(before.TxBytes), float64(after.TxBytes), txSlack)
	for _, c := range []struct {
		id     string
		lo, hi uint64
	}{
		{"dns-answers", before.DNS.OK + before.DNS.NXDomain, after.DNS.OK + after.DNS.NXDomain},
		{"dns-cache-hits", before.DNS.CacheHits, after.DNS.CacheHits},
		{"dns-failures", before.DNS.ServFail + before.DNS.Dropped, after.DNS.ServFail + after.DNS.Dropped},
		{"repairs", before.RouteRepairs, after.RouteRepairs},
		{"endpoint-changes", before.EndpointChanges, after.EndpointChanges},
	} {
		v, err := strconv.ParseFloat(pageText(t, dom, c.id), 64)
		if err != nil {
			t.Errorf("#%s: %v", c.id, err)
			continue
		}
		between(t, c.id, v, float64(c.lo), float64(c.hi), 0)
	}
	if ks := pageText(t, dom, "killswitch"); !strings.HasPrefix(ks, "on") || strings.Contains(ks, "holding") == after.atHome() {
		t.Errorf("the kill switch (on in the lab) is shown as %q while at home is %v", ks, after.atHome())
	}

	if err := os.MkdirAll("out", 0o755); err != nil {
		t.Fatal(err)
	}
	shot, _ := filepath.Abs(filepath.Join("out", "statuspage-lab.png"))
	os.Remove(shot)
	labChromium(t, url, "--screenshot="+shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	// The in line's colour (#1f6feb) is only on the chart's line and its key.
	// The key sits at the left under the axis; the line ends at "now", on the
	// right: pixels of that colour in the right half mean Chromium drew the
	// line (4 points on a 15-minute axis are a few pixels wide, so a count
	// over the whole page told the line from the key by a handful of pixels).
	right := img.Bounds()
	right.Min.X = (right.Min.X + right.Max.X) / 2
	if px := pixelsNear(img, right, 0x1f, 0x6f, 0xeb); px == 0 {
		t.Errorf("the screenshot %s has no pixel of the in line's colour right of the middle: no chart line", shot)
	} else {
		t.Logf("screenshot %s: %d pixels of the in line's colour right of the middle", shot, px)
	}
	if n := linePoints(dom); n < 4 {
		t.Errorf("the page Chromium rendered has an in line of %d points, want 4 or more", n)
	}
}

// linePoints counts the points of the chart's in line in a page.
func linePoints(page string) int {
	m := regexp.MustCompile(`class="line in" d="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		return 0
	}
	return strings.Count(m[1], "M") + strings.Count(m[1], "L")
}

// pixelsNear counts the pixels of img within bd near the colour r, g, b.
func pixelsNear(img image.Image, bd image.Rectangle, r, g, b int) int {
	d := func(a, b int) int {
		if a > b {
			return a - b
		}
		return b - a
	}
	n := 0
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			pr, pg, pb, _ := img.At(x, y).RGBA()
			if d(int(pr>>8), r)+d(int(pg>>8), g)+d(int(pb>>8), b) < 40 {
				n++
			}
		}
	}
	return n
}
