package tunsock

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// udpServer answers every datagram on loopback with reply(query); a nil
// reply sends nothing.
func udpServer(tb testing.TB, reply func(q []byte) [][]byte) string {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, r := range reply(buf[:n]) {
				pc.WriteTo(r, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

func answer(tb testing.TB, q []byte, edit func(r *dns.Msg)) []byte {
	m := new(dns.Msg)
	if err := m.Unpack(q); err != nil {
		tb.Errorf("server got no DNS query: %v", err)
		return nil
	}
	r := new(dns.Msg).SetReply(m)
	if edit != nil {
		edit(r)
	}
	b, _ := r.Pack()
	return b
}

func TestProbe(t *testing.T) {
	// closed is a port nothing answers from: ICMP port unreachable. A port
	// merely closed again could be taken by another test of the run before the
	// probe reaches it; this one stays bound by a socket connected to another
	// port, which takes no datagram from the prober, so the kernel refuses it.
	closed := func() string {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.LocalAddr().String()
	}
	var lost int
	cases := []struct {
		name  string
		addr  func() string
		rcode int
		err   error
	}{
		{"answers", func() string { return udpServer(t, func(q []byte) [][]byte { return [][]byte{answer(t, q, nil)} }) }, dns.RcodeSuccess, nil},
		{"refuses", func() string {
			return udpServer(t, func(q []byte) [][]byte {
				return [][]byte{answer(t, q, func(r *dns.Msg) { r.Rcode = dns.RcodeRefused })}
			})
		}, dns.RcodeRefused, nil},
		{"others first", func() string {
			return udpServer(t, func(q []byte) [][]byte {
				return [][]byte{[]byte("junk"), answer(t, q, func(r *dns.Msg) { r.Id++ }),
					answer(t, q, func(r *dns.Msg) { r.Question[0].Name = "example." }), answer(t, q, nil)}
			})
		}, dns.RcodeSuccess, nil},
		{"first query lost", func() string {
			return udpServer(t, func(q []byte) [][]byte {
				if lost++; lost == 1 {
					return nil
				}
				return [][]byte{answer(t, q, nil)}
			})
		}, dns.RcodeSuccess, nil},
		{"silent", func() string { return udpServer(t, func([]byte) [][]byte { return nil }) }, 0, context.DeadlineExceeded},
		{"port closed", closed, 0, syscall.ECONNREFUSED},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond)
			defer cancel()
			c, err := Dialer("lo", 0, nil)(ctx, "udp", tc.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r, err := Probe(ctx, c)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Probe = %v, %v; want an error wrapping %v", r, err, tc.err)
				}
				return
			}
			if err != nil || r.Rcode != tc.rcode {
				t.Fatalf("Probe = %v, %v; want RCODE %d", r, err, tc.rcode)
			}
		})
	}
}

func TestControlNoInterface(t *testing.T) {
	_, err := Dialer("fobgw-none0", time.Second, nil)(t.Context(), "udp", "127.0.0.1:53")
	if err == nil || !strings.Contains(err.Error(), `tunnel interface "fobgw-none0": no such interface`) {
		t.Fatalf("dial = %v, want the missing interface named", err)
	}
}

func TestControlMore(t *testing.T) {
	var got string
	c, err := Dialer("lo", time.Second, func(network string, fd int) { got = network })(t.Context(), "udp", "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got != "udp4" {
		t.Fatalf("more saw network %q, want udp4", got)
	}
}
