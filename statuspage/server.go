package statuspage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Options tune Listen; the zero value is the production one.
type Options struct {
	Logger   *slog.Logger  // nil: discard
	Interval time.Duration // sampling interval; 0: DefaultInterval
	Login    Login         // the captive-portal button; nil: none
}

// Server is the status page served on a listener, with the sampler that
// feeds its chart.
type Server struct {
	Page    *Page
	Sampler *Sampler

	srv    *http.Server
	ln     net.Listener
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve and the sampler have returned
}

// NewHTTPServer returns an http.Server for h with the timeouts a page on
// the LAN wants: a slow or idle client holds a connection for seconds, not
// for ever. log may be nil.
func NewHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// Listen serves the page for snapshot on addr (StatusListen: the caller
// checks that it is a LAN address) and samples snapshot's counters every
// interval for the chart, until Close.
func Listen(addr string, snapshot func() Snapshot, opt Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("status page listener on %s (StatusListen; empty disables it): %w", addr, err)
	}
	return Serve(ln, snapshot, opt), nil
}

// Serve is Listen on a listener of the caller's; Close closes it.
func Serve(ln net.Listener, snapshot func() Snapshot, opt Options) *Server {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sampler := NewSampler(opt.Interval)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		Page:    NewPage(snapshot, sampler, log, opt.Login),
		Sampler: sampler,
		ln:      ln,
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	s.srv = NewHTTPServer(s.Page, log)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		sampler.Run(ctx, func() (time.Time, uint64, uint64, bool) {
			sn := snapshot()
			if sn.Time.IsZero() {
				sn.Time = time.Now()
			}
			return sn.Time, sn.RxBytes, sn.TxBytes, sn.AtHome
		})
	}()
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("status page listener stopped", "addr", ln.Addr().String(), "err", err)
		}
		<-sampled
	}()
	return s
}

// Addr is the address the page is served on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops serving (requests under way get 2 s to finish) and sampling.
func (s *Server) Close() {
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.done
}
