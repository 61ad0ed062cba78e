package portal

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// loginPage is what a portal answers in place of the check's answer.
const loginPage = `<html><body><form method="post" action="/login"><button>Log in</button></form></body></html>`

func TestDetect(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/generate_204", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/ok200", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "success\n") })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://portal.example/login?orig=x", http.StatusFound)
	})
	mux.HandleFunc("/relative", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/login")
		w.WriteHeader(http.StatusSeeOther)
	})
	mux.HandleFunc("/to-script", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "javascript:alert(1)")
		w.WriteHeader(http.StatusFound)
	})
	mux.HandleFunc("/no-location", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTemporaryRedirect) })
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
		io.WriteString(w, loginPage)
	})
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, loginPage) })
	mux.HandleFunc("/page204", func(w http.ResponseWriter, r *http.Request) {
		// A portal that copies the status but not the empty body: an
		// HTTP/1.1 server cannot send a body with 204, so it says 200.
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, loginPage)
	})
	mux.HandleFunc("/511", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNetworkAuthenticationRequired)
		io.WriteString(w, `<meta http-equiv="refresh" content="0; url=http://portal.example/">`)
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 10*MaxBody))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name   string
		check  Check
		state  State
		url    string // "" for none; "CHECK" for the check URL
		status int
	}{
		{"204 as expected", Check{srv.URL + "/generate_204", 204}, None, "", 204},
		{"200 as expected", Check{srv.URL + "/ok200", 200}, None, "", 200},
		{"302 to the portal", Check{srv.URL + "/redirect", 204}, Portal, "http://portal.example/login?orig=x", 302},
		{"303 relative", Check{srv.URL + "/relative", 204}, Portal, srv.URL + "/login", 303},
		{"redirect to a script is no URL to show", Check{srv.URL + "/to-script", 204}, Portal, "CHECK", 302},
		{"redirect without Location", Check{srv.URL + "/no-location", 204}, Portal, "CHECK", 307},
		{"200 login page", Check{srv.URL + "/page", 204}, Portal, "CHECK", 200},
		{"200 page where 204 was due", Check{srv.URL + "/page204", 204}, Portal, "CHECK", 200},
		{"511 network authentication required", Check{srv.URL + "/511", 204}, Portal, "CHECK", 511},
		{"404", Check{srv.URL + "/nothing-here", 204}, Portal, "CHECK", 404},
		{"a body larger than MaxBody", Check{srv.URL + "/huge", 204}, Portal, "CHECK", 200},
		{"off", Check{}, Unknown, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			res := NewDetector(srv.Client(), tc.check, 0).Detect(t.Context())
			want := tc.url
			if want == "CHECK" {
				want = tc.check.URL
			}
			if res.State != tc.state || res.URL != want || res.Status != tc.status {
				t.Fatalf("Detect = %+v; want state %v, URL %q, status %d", res, tc.state, want, tc.status)
			}
			if res.At.Before(before) {
				t.Errorf("At %v is before the check began (%v)", res.At, before)
			}
		})
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("the detector followed a redirect %d times; it must follow none", n)
	}
}

// A check that gets no answer knows nothing: a server that accepts and never
// answers, one that refuses, one that hangs up.
func TestDetectNoAnswer(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) }) // runs before hang.Close

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/generate_204"
	ln.Close()

	hangup, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hangup.Close() })
	go func() {
		for {
			c, err := hangup.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	for _, tc := range []struct {
		name, url string
		timeout   time.Duration
		says      string
	}{
		{"timeout", hang.URL + "/generate_204", 100 * time.Millisecond, "no answer in time"},
		{"refused", refused, 0, "refused"},
		{"hung up", "http://" + hangup.Addr().String() + "/generate_204", 0, ""}, // EOF or reset
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := NewDetector(http.DefaultClient, Check{URL: tc.url, Status: 204}, tc.timeout).Detect(t.Context())
			if res.State != Unknown || res.URL != "" || res.Status != 0 || res.Error == "" || !strings.Contains(res.Error, tc.says) {
				t.Fatalf("Detect = %+v; want state unknown saying %q", res, tc.says)
			}
		})
	}
}

func TestDetectCancelled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if res := NewDetector(srv.Client(), Check{srv.URL, 204}, 0).Detect(ctx); res.State != Unknown {
		t.Fatalf("Detect with a cancelled context = %+v, want unknown", res)
	}
}

func TestResultJSON(t *testing.T) {
	at := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	b, err := json.Marshal(Result{State: Portal, URL: "http://portal.example/", Status: 302, At: at})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"state":"portal","url":"http://portal.example/","status":302,"at":"2026-12-02T05:00:00Z"}`
	if string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || back.State != Portal || back.URL != "http://portal.example/" {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}
