package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The test of issue 15: the path under the tunnel narrower than the tunnel, ICMP "fragmentation
// needed" dropped on it (bash lab.sh path-mtu N).

// mtuStatus is the "mtu" object of `fobgw status -json` (pmtud.Status).
type mtuStatus struct {
	Ceiling   int    `json:"ceiling"`
	Path      int    `json:"path"`
	Effective int    `json:"effective"`
	State     string `json:"state"`
	Changes   int    `json:"changes"`
}

func gatewayMTU(tb testing.TB) (mtuStatus, error) {
	out, err := ns("muc", filepath.Join(lab.bin, "fobgw"), "status", "-json", "-config", filepath.Join(lab.dir, "fobgw.conf"))
	if err != nil {
		return mtuStatus{}, err
	}
	var st struct {
		MTU *mtuStatus `json:"mtu"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return mtuStatus{}, fmt.Errorf("fobgw status -json: %v: %s", err, out)
	}
	if st.MTU == nil {
		return mtuStatus{}, fmt.Errorf("fobgw status -json has no \"mtu\" object: %s", out)
	}
	return *st.MTU, nil
}

// fits checks an effective MTU against a link of MTU link: its datagrams (inner + 60, the inner
// packet padded by WireGuard to a multiple of 16) must fit, and it must not waste more than the
// padding (16 bytes) of what fits.
func fits(effective, link int) error {
	best := link - 60
	if effective > best || effective < best-16 {
		return fmt.Errorf("effective MTU %d over a %d-byte link: want %d-%d (inner + 60 must fit, padding aside)", effective, link, best-16, best)
	}
	return nil
}

// TestPathMTU: the story's config (MTU = 1420) over an ISP-to-home link of 1400 with ICMP
// "fragmentation needed" dropped there. A 256 KiB download from the LAN completes within 30 s of
// the gateway's start; the link shrinks to 1360 while it runs: downloads complete again within
// 120 s; the link back at 1500: the effective MTU returns to 1420.
func TestPathMTU(t *testing.T) {
	if lab.gateway != "fobgw" {
		t.Skipf("the %s gateway does not discover the path MTU", lab.gateway)
	}
	lab.standard(t) // its cleanup puts the link back at 1500 and restarts the gateway
	download := func() error {
		out, err := ns("client", "curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{size_download}",
			fmt.Sprintf("%s/big?size=%d", webURL, bigSize))
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != fmt.Sprint(bigSize) {
			return fmt.Errorf("downloaded %s bytes, want %d", out, bigSize)
		}
		return nil
	}
	conf, err := os.ReadFile(filepath.Join(lab.dir, "fobgw.conf"))
	if err != nil || !strings.Contains(string(conf), "MTU = 1420") {
		t.Fatalf("the lab's configuration is not the story's (MTU = 1420): %v\n%s", err, conf)
	}

	lab.lab(t, "path-mtu", "1400")
	logFile := filepath.Join(lab.dir, "gw.log")
	var logStart int64 // the gateway's log before this test's start
	if fi, err := os.Stat(logFile); err == nil {
		logStart = fi.Size()
	}
	t.Run("link at 1400: a download completes within 30 s of start", func(t *testing.T) {
		start := time.Now()
		lab.labEnv(t, stdEnv, "gw", lab.gateway, "auto")
		waitFor(t, "a 256 KiB download through the narrow link", 30*time.Second-time.Since(start), download)
		t.Logf("first complete download %v after the gateway's start", time.Since(start).Round(100*time.Millisecond))
		st, err := gatewayMTU(t)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("status mtu: %+v", st)
		if st.Ceiling != 1420 {
			t.Errorf("ceiling %d, want the configured 1420", st.Ceiling)
		}
		if err := fits(st.Effective, 1400); err != nil {
			t.Error(err)
		}
	})

	t.Run("link shrinks to 1360: downloads complete again within 120 s", func(t *testing.T) {
		lab.lab(t, "path-mtu", "1360")
		start := time.Now()
		waitFor(t, "a 256 KiB download after the link shrank", 120*time.Second, download)
		t.Logf("downloads complete again %v after the link shrank", time.Since(start).Round(100*time.Millisecond))
		st, err := gatewayMTU(t)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("status mtu: %+v", st)
		if err := fits(st.Effective, 1360); err != nil {
			t.Error(err)
		}
	})

	t.Run("link back at 1500: effective MTU returns to 1420", func(t *testing.T) {
		lab.lab(t, "path-mtu", "1500")
		start := time.Now()
		var st mtuStatus
		waitFor(t, "the effective MTU to return to 1420", 180*time.Second, func() error {
			var err error
			if st, err = gatewayMTU(t); err != nil {
				return err
			}
			if st.Effective != 1420 || st.Path != 1420 {
				return fmt.Errorf("status mtu %+v", st)
			}
			return nil
		})
		t.Logf("effective MTU back at 1420 %v after the link grew: %+v", time.Since(start).Round(100*time.Millisecond), st)
		if err := download(); err != nil {
			t.Errorf("download at 1420 over the 1500 link: %v", err)
		}
		out := mustNS(t, "muc", "curl", "-fsS", "--max-time", "3", "http://127.0.0.1:9636/metrics")
		if !strings.Contains(out, "\nfobgw_mtu_effective_bytes 1420\n") {
			t.Errorf("metrics lack fobgw_mtu_effective_bytes 1420")
		}
		// Each change is logged once, with both values.
		b, err := os.ReadFile(logFile)
		if err != nil || int64(len(b)) < logStart {
			t.Fatalf("the gateway's log: %v", err)
		}
		var changes []string
		for _, l := range strings.Split(string(b[logStart:]), "\n") {
			if strings.Contains(l, "tunnel MTU changed") {
				changes = append(changes, l)
			}
		}
		if len(changes) != st.Changes || st.Changes < 3 {
			t.Errorf("%d changes logged, status counts %d (want at least 3: down to the 1400 link, to 1360, back to 1420):\n%s",
				len(changes), st.Changes, strings.Join(changes, "\n"))
		}
		for _, l := range changes {
			if !strings.Contains(l, "old=") || !strings.Contains(l, "new=") {
				t.Errorf("a change logged without both values: %s", l)
			}
		}
	})
}
