// Command labportal is the captive portal of the lab's local ISP (bench/lab.sh portal-on): the
// ISP's router sends every HTTP request of the FOB's WAN address here and drops everything else
// it forwards from that address, until someone submits the login form. Like a hotel's portal, it
// answers any request with its login page, which loads a stylesheet of its own.
//
//	GET /portal.css    the page's stylesheet
//	POST /login        the login (form field accept=yes): the sender's address is let through
//	                   (added to the nftables set -allow names), and a page says so
//	anything else      the login page; with -redirect URL, a request for another host than
//	                   URL's gets a 302 to URL instead, as many portals do
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"
)

const loginPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Lab ISP Wi-Fi: log in</title>
<link rel="stylesheet" href="/portal.css"></head>
<body><main>
<h1>Welcome to the lab ISP's Wi-Fi</h1>
<form method="post" action="/login">
<label><input type="checkbox" name="accept" value="yes" id="accept"> I accept the terms of use</label>
<button type="submit" id="login">Log in</button>
</form>
</main></body></html>
`

const stylesheet = `body { font-family: sans-serif; background: #eef; }
main { max-width: 30em; margin: 2em auto; padding: 1em; background: #fff; }
`

const loggedIn = `<!doctype html>
<html><head><meta charset="utf-8"><title>Lab ISP Wi-Fi: online</title>
<link rel="stylesheet" href="/portal.css"></head>
<body><main><h1 id="online">You are online</h1><p>%s may use the internet now.</p></main></body></html>
`

func main() {
	listen := flag.String("listen", "192.168.2.1:8008", "address to listen on")
	allow := flag.String("allow", "", `nftables set a login adds the sender's address to, as "FAMILY TABLE SET" (empty: none)`)
	redirect := flag.String("redirect", "", "answer requests for other hosts with a 302 to this URL")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var set []string
	if *allow != "" {
		if set = strings.Fields(*allow); len(set) != 3 {
			fmt.Fprintf(os.Stderr, "labportal: -allow %q: want FAMILY TABLE SET, e.g. \"ip fobl-portal allowed\"\n", *allow)
			os.Exit(2)
		}
	}
	login := func(a netip.Addr) error {
		if set == nil {
			return nil
		}
		out, err := exec.Command("nft", "add", "element", set[0], set[1], set[2], "{ "+a.String()+" }").CombinedOutput()
		if err != nil {
			return fmt.Errorf("nft add element %s: %v: %s", strings.Join(set, " "), err, out)
		}
		return nil
	}
	h, err := newHandler(logger, login, *redirect)
	if err != nil {
		fmt.Fprintf(os.Stderr, "labportal: %v\n", err)
		os.Exit(2)
	}
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	logger.Info("listening", "addr", *listen, "allow", *allow, "redirect", *redirect)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error("serve", "addr", *listen, "err", err)
		os.Exit(1)
	}
}

// newHandler is the portal: login lets an address through; redirect ("" for none) is where
// requests for other hosts are sent.
func newHandler(logger *slog.Logger, login func(netip.Addr) error, redirect string) (http.Handler, error) {
	var portalHost string
	if redirect != "" {
		u, err := url.Parse(redirect)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("-redirect %q: want an http:// URL with a host", redirect)
		}
		portalHost = strings.ToLower(u.Host)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /portal.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprint(w, stylesheet)
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if r.PostFormValue("accept") != "yes" {
			http.Error(w, "accept the terms of use to log in", http.StatusBadRequest)
			return
		}
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			http.Error(w, "no sender address", http.StatusInternalServerError)
			return
		}
		a := ap.Addr().Unmap()
		if err := login(a); err != nil {
			logger.Error("login", "remote", a, "err", err)
			http.Error(w, "login failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		logger.Info("login: let through", "remote", a, "host", r.Host)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, loggedIn, a)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if portalHost != "" && !strings.EqualFold(hostOnly(r.Host), hostOnly(portalHost)) {
			logger.Info("redirected", "remote", r.RemoteAddr, "host", r.Host, "path", r.URL.Path)
			http.Redirect(w, r, redirect, http.StatusFound)
			return
		}
		logger.Info("intercepted", "remote", r.RemoteAddr, "host", r.Host, "path", r.URL.Path)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, loginPage)
	})
	return mux, nil
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}
