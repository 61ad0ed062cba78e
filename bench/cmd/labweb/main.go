// Command labweb is the web server of the lab's "internet" (bench/lab.sh): it tells a client the
// address it came from and serves large objects, the two things the story's failures show in.
//
//	GET /ip            the remote address as the server sees it, one line
//	GET /big?size=N    N bytes (default 262144) of pseudo-random data
//	GET /generate_204  204 No Content: the answer of the connectivity check that phones make,
//	                   and fobgw's captive portal check (the lab's ISP DNS names it)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

const (
	defaultSize = 256 << 10
	maxSize     = 1 << 30
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv := &http.Server{
		Addr:              *listen,
		Handler:           newMux(logger),
		ReadHeaderTimeout: 10 * time.Second,
	}
	logger.Info("listening", "addr", *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Error("serve", "addr", *listen, "err", err)
		os.Exit(1)
	}
}

func newMux(logger *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ip", func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, host)
	})
	mux.HandleFunc("GET /generate_204", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		size := defaultSize
		if s := r.URL.Query().Get("size"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > maxSize {
				http.Error(w, fmt.Sprintf("size %q: want a byte count from 0 to %d", s, maxSize), http.StatusBadRequest)
				return
			}
			size = n
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		var seed [32]byte
		rng := rand.NewChaCha8(seed)
		if _, err := io.CopyN(w, rng, int64(size)); err != nil {
			logger.Info("big: client went away", "remote", r.RemoteAddr, "err", err)
		}
	})
	return mux
}
