package statuspage

import (
	"context"
	"image"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromiumFlags make headless Chromium a quiet, throwaway browser: no
// sandbox (the tests run as root), no GPU, no request of its own.
var chromiumFlags = []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"}

// chromium runs Debian's chromium on url with a phone's window (390x844,
// a common phone's CSS pixels) and extra flags, and returns its stdout.
func chromium(t *testing.T, url string, extra ...string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is missing: install Debian's chromium (apt-get install chromium; make deps does once it is in DEB_PACKAGES)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append(append([]string{}, chromiumFlags...), "--user-data-dir="+t.TempDir(), "--window-size=390,844")
	args = append(append(args, extra...), url)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(extra, " "), err, stderr.String())
	}
	return string(out)
}

// TestInBrowser renders the page in headless Chromium at a phone's size:
// the DOM the browser built says what the page should, and the screenshot
// (saved as bench/out/statuspage.png) shows both lines of the chart.
func TestInBrowser(t *testing.T) {
	s := home()
	sampler := samplerFor(time.Date(2026, 11, 28, 14, 2, 0, 0, time.UTC), s.Time)
	srv := NewHTTPServer(NewPage(func() Snapshot { return s }, sampler, nil, nil), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	url := "http://" + ln.Addr().String() + "/"

	dom := chromium(t, url, "--dump-dom")
	for id, want := range map[string]string{
		"headline":    "At home",
		"since":       "since 16:03 (12 min)",
		"handshake":   "12 s ago",
		"endpoint":    "198.51.100.2:13231 (home.example)",
		"rx":          "1.20 GiB",
		"dns-answers": "4821",
		"killswitch":  "on: the LAN's traffic leaves only through the tunnel",
	} {
		if got := byID(t, dom, id); got != want {
			t.Errorf("in the browser, #%s says %q, want %q", id, got, want)
		}
	}
	if !strings.Contains(dom, `<path class="line in"`) || !strings.Contains(dom, `<path class="line out"`) {
		t.Error("the browser's DOM has no chart lines")
	}

	dir := filepath.Join("..", "bench", "out")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "statuspage.png")
	os.Remove(shot)
	abs, _ := filepath.Abs(shot)
	chromium(t, url, "--screenshot="+abs)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("chromium saved no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 390 {
		t.Errorf("screenshot %dx%d, want a 390 pixel wide phone", b.Dx(), b.Dy())
	}
	// The lines' colours (--in #1f6feb, --out #d97706) are nowhere else on
	// the page but in the legend's two small keys.
	in, out := colourPixels(img, 0x1f, 0x6f, 0xeb), colourPixels(img, 0xd9, 0x77, 0x06)
	t.Logf("screenshot %s: %d pixels of the in line's colour, %d of the out line's", abs, in, out)
	if in < 200 || out < 200 {
		t.Errorf("the screenshot shows %d pixels of the in line's colour and %d of the out line's, want a line of each (200 or more)", in, out)
	}
}

// colourPixels counts the pixels of img near the colour r, g, b.
func colourPixels(img image.Image, r, g, b int) int {
	n := 0
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			pr, pg, pb, _ := img.At(x, y).RGBA()
			if abs(int(pr>>8)-r)+abs(int(pg>>8)-g)+abs(int(pb>>8)-b) < 40 {
				n++
			}
		}
	}
	return n
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
