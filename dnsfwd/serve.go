package dnsfwd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"
)

const maxUDPQuery = 4096 // larger UDP queries are dropped (read into one byte more to see them)

// Start binds the UDP and TCP listeners on Listen, opens the upstream sockets, and returns once
// serving. Errors name the cause and the remedy (address missing, port privilege, address in use,
// tunnel interface missing).
func (f *Forwarder) Start() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		return ErrClosed
	case f.started:
		return errors.New("dnsfwd: Start called twice")
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.cfg.Timeout)
	defer cancel()

	udp, tl, addr, err := listen(ctx, f.cfg.Listen)
	// Port 0 asks for any port free for UDP and TCP alike: the port the kernel gave the UDP
	// sockets may be held by a TCP socket (a client's), so another is tried.
	for try := 0; err != nil && errors.Is(err, syscall.EADDRINUSE) && f.cfg.Listen.Port() == 0 && try < 8; try++ {
		udp, tl, addr, err = listen(ctx, f.cfg.Listen)
	}
	if err != nil {
		return err
	}
	closeAll := func() {
		for _, c := range udp {
			c.Close()
		}
	}
	ups, err := f.openUpstreams(ctx, f.cfg.Upstream, f.dial)
	if err != nil {
		closeAll()
		tl.Close()
		return err
	}
	var local *upstreams
	if f.brk != nil {
		if local, err = f.openUpstreams(ctx, f.cfg.Resolver, f.brk.dial); err != nil {
			ups.close()
			closeAll()
			tl.Close()
			return err
		}
		local.start()
	}
	f.udp, f.tcp, f.addr, f.ups, f.local, f.started = udp, tl, addr, ups, local, true

	for _, c := range udp {
		f.wg.Add(1)
		go f.serveUDP(c)
	}
	ups.start()
	f.wg.Add(1)
	go f.serveTCP(tl)
	f.log.Info("dnsfwd: serving", "listen", addr, "upstream", f.cfg.Upstream, "interface", f.cfg.Interface, "resolver", f.cfg.Resolver)
	return nil
}

// listen opens the UDP sockets and the TCP listener on addr, all on one port.
func listen(ctx context.Context, addr netip.AddrPort) ([]*net.UDPConn, net.Listener, netip.AddrPort, error) {
	lc := net.ListenConfig{Control: listenControl}
	// Several sockets on one address (SO_REUSEPORT), each with its reader: the kernel spreads clients
	// over them by their addresses, so a few busy clients still keep every core serving.
	n := max(4, 2*runtime.GOMAXPROCS(0))
	var udp []*net.UDPConn
	closeAll := func() {
		for _, c := range udp {
			c.Close()
		}
	}
	for range n {
		pc, err := lc.ListenPacket(ctx, "udp", addr.String())
		if err != nil {
			closeAll()
			return nil, nil, addr, listenError("UDP", addr, err)
		}
		c := pc.(*net.UDPConn)
		sizeBuffers(c)
		udp = append(udp, c)
		addr = netip.AddrPortFrom(addr.Addr(), c.LocalAddr().(*net.UDPAddr).AddrPort().Port())
	}
	tl, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr.String())
	if err != nil {
		closeAll()
		return nil, nil, addr, listenError("TCP", addr, err)
	}
	return udp, tl, addr, nil
}

// Close stops serving, closes every socket and waits for the forwarder's goroutines. Pending queries
// are not answered. Close is idempotent.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	close(f.done)
	if f.started {
		for _, c := range f.udp {
			c.Close()
		}
		f.tcp.Close()
		f.ups.close()
		if f.local != nil {
			f.local.close()
		}
	}
	f.mu.Unlock()
	f.tcpMu.Lock()
	for c := range f.tcpConns {
		c.Close()
	}
	f.tcpMu.Unlock()
	f.wg.Wait()
	return nil
}

func (f *Forwarder) isClosed() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

func (f *Forwarder) inLAN(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range f.cfg.LAN {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// serveUDP answers queries arriving on c until it is closed.
func (f *Forwarder) serveUDP(c *net.UDPConn) {
	defer f.wg.Done()
	buf := make([]byte, maxUDPQuery+1)
	out := make([]byte, 0, maxMsgSize)
	for {
		n, addr, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		f.st.queries.Add(1)
		if !f.inLAN(addr.Addr()) {
			// No answer at all: never an open resolver, never a reflector toward a spoofed source.
			f.st.nonLAN.Add(1)
			f.st.dropped.Add(1)
			continue
		}
		if n > maxUDPQuery { // cut by the read: forwarding the rest would forward garbage
			f.st.dropped.Add(1)
			continue
		}
		out = f.handle(buf[:n], out, client{udp: c, addr: addr})
	}
}

// String describes the forwarder for logs.
func (f *Forwarder) String() string {
	s := fmt.Sprintf("dnsfwd %s -> %s via %q", f.cfg.Listen, f.cfg.Upstream, f.cfg.Interface)
	if f.brk != nil {
		s += fmt.Sprintf(", local breakout -> %s", f.cfg.Resolver)
	}
	return s
}
