package main

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func newTestPortal(t *testing.T, redirect string, fail bool) (*httptest.Server, *[]netip.Addr) {
	t.Helper()
	var logins []netip.Addr
	h, err := newHandler(slog.New(slog.NewTextHandler(io.Discard, nil)), func(a netip.Addr) error {
		if fail {
			return errors.New("nft: no such set")
		}
		logins = append(logins, a)
		return nil
	}, redirect)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, &logins
}

func noFollow() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u, host string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestPortalPage(t *testing.T) {
	srv, logins := newTestPortal(t, "", false)
	// Any path of any host is the login page, a check URL's too.
	for _, p := range []string{"/", "/generate_204", "/ip", "/some/deep/path?x=1"} {
		resp, body := get(t, noFollow(), srv.URL+p, "connectivitycheck.gstatic.com")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `action="/login"`) || !strings.Contains(body, `href="/portal.css"`) {
			t.Fatalf("GET %s: %d %q; want the login page", p, resp.StatusCode, body)
		}
	}
	resp, body := get(t, noFollow(), srv.URL+"/portal.css", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/css" || !strings.Contains(body, "body") {
		t.Fatalf("GET /portal.css: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if len(*logins) != 0 {
		t.Fatalf("logins %v before any form was sent", *logins)
	}
}

func TestPortalLogin(t *testing.T) {
	srv, logins := newTestPortal(t, "", false)
	// Without the box ticked: no login.
	resp, err := http.PostForm(srv.URL+"/login", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || len(*logins) != 0 {
		t.Fatalf("login without accept: %d, logins %v", resp.StatusCode, *logins)
	}
	resp, err = http.PostForm(srv.URL+"/login", url.Values{"accept": {"yes"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "You are online") {
		t.Fatalf("login: %d %q", resp.StatusCode, b)
	}
	if len(*logins) != 1 || (*logins)[0] != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("logins %v, want the sender 127.0.0.1", *logins)
	}
}

func TestPortalLoginFails(t *testing.T) {
	srv, _ := newTestPortal(t, "", true)
	resp, err := http.PostForm(srv.URL+"/login", url.Values{"accept": {"yes"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), "no such set") {
		t.Fatalf("a failed login: %d %q", resp.StatusCode, b)
	}
}

func TestPortalRedirect(t *testing.T) {
	srv, _ := newTestPortal(t, "http://portal.example/", false)
	resp, _ := get(t, noFollow(), srv.URL+"/generate_204", "connectivitycheck.gstatic.com")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "http://portal.example/" {
		t.Fatalf("GET for another host: %d to %q; want 302 to the portal", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := get(t, noFollow(), srv.URL+"/", "portal.example")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `action="/login"`) {
		t.Fatalf("GET of the portal's own host: %d %q", resp.StatusCode, body)
	}
	if _, err := newHandler(nil, nil, "portal.example"); err == nil {
		t.Fatal("a redirect without scheme was accepted")
	}
}
