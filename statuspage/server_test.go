package statuspage

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestServe: the page is served on a loopback listener, the sampler feeds
// on the snapshot's counters, and Close stops both.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var rx atomic.Uint64
	reads := make(chan struct{}, 100)
	snap := func() Snapshot {
		s := home()
		s.Time = time.Now()
		s.RxBytes = rx.Add(1e6)
		select {
		case reads <- struct{}{}:
		default:
		}
		return s
	}
	srv := Serve(ln, snap, Options{Interval: 20 * time.Millisecond})
	closed := false
	defer func() {
		if !closed {
			srv.Close()
		}
	}()
	for range 4 {
		select {
		case <-reads:
		case <-time.After(5 * time.Second):
			t.Fatal("the sampler does not read the snapshot")
		}
	}
	c := &http.Client{Timeout: 5 * time.Second}
	r, err := c.Get("http://" + srv.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || !strings.Contains(string(b), `id="headline">At home<`) {
		t.Fatalf("GET /: %s\n%s", r.Status, b)
	}
	if !strings.Contains(string(b), `<path class="line in"`) {
		t.Error("no chart line after several samples")
	}
	srv.Close()
	closed = true
	if _, err := c.Get("http://" + srv.Addr().String() + "/"); err == nil {
		t.Error("the page is still served after Close")
	}
}

// TestSlowClient: a client that sends half a request header is cut off by
// ReadHeaderTimeout instead of holding the connection.
func TestSlowClient(t *testing.T) {
	srv := NewHTTPServer(http.NotFoundHandler(), nil)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Fatalf("timeouts not all set: %+v", srv)
	}
	srv.ReadHeaderTimeout = 200 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = bufio.NewReader(conn).ReadString('\n')
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the server still holds the half-sent request after %v", time.Since(start))
	}
}
