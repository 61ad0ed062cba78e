package dnsfwd

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Building blocks of test queries, byte by byte.
var (
	// question: a.example. A IN
	tQuestion = []byte{1, 'a', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1}
	// OPT: root owner, TYPE 41, CLASS (UDP size) 1232, TTL 0 (DO clear), RDLENGTH 0
	tOPT = []byte{0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0}
	// A record: a.example. (pointer to the question) A IN TTL 60 RDLENGTH 4 192.0.2.1
	tA = []byte{0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1}
)

// tQuery returns a query with ID 0xbeef, RD set, the given section counts, and the bytes of parts
// after the header.
func tQuery(qd, an, ns, ar uint16, parts ...[]byte) []byte {
	m := []byte{0xbe, 0xef, 0x01, 0x00, byte(qd >> 8), byte(qd), byte(an >> 8), byte(an), byte(ns >> 8), byte(ns), byte(ar >> 8), byte(ar)}
	for _, p := range parts {
		m = append(m, p...)
	}
	return m
}

// tOPTWith returns an OPT record holding the options given as raw RDATA, its RDLENGTH rdlen.
func tOPTWith(rdlen uint16, rdata []byte) []byte {
	o := append([]byte(nil), tOPT[:9]...)
	return append(append(o, byte(rdlen>>8), byte(rdlen)), rdata...)
}

// malformedQueries is the family of broken queries: each gets FORMERR, echoing the question if echo.
var malformedQueries = []struct {
	name string
	msg  []byte
	echo bool
}{
	// The three.
	{"ARCOUNT 65535 after the question", tQuery(1, 0, 0, 65535, tQuestion), true},
	{"OPT RDLENGTH past the end", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(10, nil)), true},
	{"two OPT records", tQuery(1, 0, 0, 2, tQuestion, tOPT, tOPT), true},
	// Each count too high or too low.
	{"QDCOUNT 0", tQuery(0, 0, 0, 0, tQuestion), false},
	{"QDCOUNT 2, one question", tQuery(2, 0, 0, 0, tQuestion), false},
	{"QDCOUNT 2, two questions", tQuery(2, 0, 0, 0, tQuestion, tQuestion), false},
	{"ANCOUNT 1, no record", tQuery(1, 1, 0, 0, tQuestion), true},
	{"ANCOUNT 1, a record", tQuery(1, 1, 0, 0, tQuestion, tA), true},
	{"NSCOUNT 1, no record", tQuery(1, 0, 1, 0, tQuestion), true},
	{"NSCOUNT 1, a record", tQuery(1, 0, 1, 0, tQuestion, tA), true},
	{"ARCOUNT 1, no record", tQuery(1, 0, 0, 1, tQuestion), true},
	{"ARCOUNT 2, one OPT", tQuery(1, 0, 0, 2, tQuestion, tOPT), true},
	{"ARCOUNT 0, an OPT after the question", tQuery(1, 0, 0, 0, tQuestion, tOPT), true},
	// The OPT duplicated, misplaced, not an OPT.
	{"two OPT records, ARCOUNT 1", tQuery(1, 0, 0, 1, tQuestion, tOPT, tOPT), true},
	{"OPT in the answer section", tQuery(1, 1, 0, 0, tQuestion, tOPT), true},
	{"OPT in the authority section", tQuery(1, 0, 1, 0, tQuestion, tOPT), true},
	{"OPT in the answer section and another in additional", tQuery(1, 1, 0, 1, tQuestion, tOPT, tOPT), true},
	{"A record in the additional section", tQuery(1, 0, 0, 1, tQuestion, tA), true},
	{"OPT then an A record", tQuery(1, 0, 0, 2, tQuestion, tOPT, tA), true},
	{"OPT with a non-root owner", tQuery(1, 0, 0, 1, tQuestion, append([]byte{1, 'a'}, tOPT...)), true},
	{"OPT with a compressed root owner", tQuery(1, 0, 0, 1, tQuestion, append([]byte{0xc0, 12}, tOPT[1:]...)), true},
	// Cut short.
	{"question without QCLASS", tQuery(1, 0, 0, 0, tQuestion[:len(tQuestion)-2]), false},
	{"question name unterminated", tQuery(1, 0, 0, 0, tQuestion[:5]), false},
	{"question name compressed", tQuery(1, 0, 0, 0, []byte{0xc0, 12, 0, 1, 0, 1}), false},
	{"OPT cut in its header", tQuery(1, 0, 0, 1, tQuestion, tOPT[:7]), true},
	{"OPT without RDLENGTH", tQuery(1, 0, 0, 1, tQuestion, tOPT[:9]), true},
	{"OPT RDLENGTH 4, 3 bytes", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(4, []byte{0, 12, 0})), true},
	{"option longer than RDLENGTH", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(4, []byte{0, 10, 0, 8})), true},
	{"option header cut", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(2, []byte{0, 12})), true},
	// Bytes left over.
	{"a byte after the question", tQuery(1, 0, 0, 0, tQuestion, []byte{0}), true},
	{"a byte after the OPT", tQuery(1, 0, 0, 1, tQuestion, tOPT, []byte{0}), true},
	{"OPT RDLENGTH short of the end", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(0, []byte{0, 12, 0, 0})), true},
	// Options of a fixed length, of another.
	{"client subnet, family 3", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(8, []byte{0, 8, 0, 4, 0, 3, 0, 0})), true},
	{"client subnet, IPv4 /33", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(13, []byte{0, 8, 0, 9, 0, 1, 33, 0, 1, 2, 3, 4, 5})), true},
	{"client subnet, /24 with 4 address bytes", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(12, []byte{0, 8, 0, 8, 0, 1, 24, 0, 10, 0, 0, 0})), true},
	{"client subnet, 3 bytes", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(7, []byte{0, 8, 0, 3, 0, 1, 24})), true},
	{"tcp-keepalive of 1 byte", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(5, []byte{0, 11, 0, 1, 0})), true},
	{"EXPIRE of 2 bytes", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(6, []byte{0, 9, 0, 2, 0, 0})), true},
	{"update lease of 2 bytes", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(6, []byte{0, 2, 0, 2, 0, 0})), true},
	{"LLQ of 4 bytes", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(8, []byte{0, 1, 0, 4, 0, 1, 0, 1})), true},
	{"extended error of 1 byte", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(5, []byte{0, 15, 0, 1, 0})), true},
	{"report channel not a name", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(6, []byte{0, 18, 0, 2, 5, 'a'})), true},
}

// wellFormedQueries are served (forwarded, answered NOERROR).
var wellFormedQueries = []struct {
	name string
	msg  []byte
}{
	{"no OPT", tQuery(1, 0, 0, 0, tQuestion)},
	{"OPT", tQuery(1, 0, 0, 1, tQuestion, tOPT)},
	{"OPT with a cookie", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(12, []byte{0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}))},
	{"OPT with a client subnet /24", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(11, []byte{0, 8, 0, 7, 0, 1, 24, 0, 10, 0, 0}))},
	{"OPT with dig's empty client subnet", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(8, []byte{0, 8, 0, 4, 0, 0, 0, 0}))},
	{"OPT with padding and keepalive", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(11, []byte{0, 12, 0, 3, 0, 0, 0, 0, 11, 0, 0}))},
	{"OPT with an unknown option", tQuery(1, 0, 0, 1, tQuestion, tOPTWith(5, []byte{0xfd, 0xe9, 0, 1, 7}))},
}

func TestParseQuery(t *testing.T) {
	for _, tc := range malformedQueries {
		t.Run(tc.name, func(t *testing.T) {
			q, shape := parseQuery(tc.msg)
			want := malformed
			if tc.echo {
				want = malformedEchoing
			}
			if shape != want {
				t.Fatalf("shape %d, want %d", shape, want)
			}
			if tc.echo && q.end != headerLen+len(tQuestion) {
				t.Errorf("question ends at %d, want %d", q.end, headerLen+len(tQuestion))
			}
		})
	}
	for _, tc := range wellFormedQueries {
		t.Run(tc.name, func(t *testing.T) {
			if _, shape := parseQuery(tc.msg); shape != queryOK {
				t.Fatalf("shape %d, want queryOK", shape)
			}
			if err := new(dns.Msg).Unpack(tc.msg); err != nil {
				t.Fatalf("the test query itself does not unpack: %v", err)
			}
		})
	}
}

// TestMalformedQueriesFormErr sends each malformed query over UDP and TCP: FORMERR, the question
// echoed when it parsed, no OPT, counted; and the upstream sees none of them.
func TestMalformedQueriesFormErr(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.11", 60))
	f := startForwarder(t, up.addr, nil)
	raw := func(network string, msg []byte) []byte {
		t.Helper()
		c, err := net.Dial(network, f.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		out := msg
		if network == "tcp" {
			out = append([]byte{byte(len(msg) >> 8), byte(len(msg))}, msg...)
		}
		if _, err := c.Write(out); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65535)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%s: no answer: %v", network, err)
		}
		if network == "tcp" {
			buf = buf[2:n]
		} else {
			buf = buf[:n]
		}
		return buf
	}
	sent := 0
	for _, tc := range malformedQueries {
		t.Run(tc.name, func(t *testing.T) {
			for _, network := range []string{"udp", "tcp"} {
				a := raw(network, tc.msg)
				sent++
				r := new(dns.Msg)
				if err := r.Unpack(a); err != nil {
					t.Fatalf("%s: answer does not unpack: %v", network, err)
				}
				if r.Id != 0xbeef || !r.Response || r.Rcode != dns.RcodeFormatError || len(r.Answer)+len(r.Ns)+len(r.Extra) != 0 {
					t.Fatalf("%s: answer %v, want FORMERR, ID 0xbeef, no records", network, r)
				}
				echoed := len(r.Question) == 1 && bytes.Equal(a[headerLen:], tQuestion)
				if echoed != tc.echo || (!tc.echo && len(a) != headerLen) {
					t.Errorf("%s: question echoed %v (%d bytes), want %v", network, echoed, len(a), tc.echo)
				}
			}
		})
	}
	// A good query after them: once its answer is back, any malformed one forwarded would have been
	// seen upstream too (same process, loopback, sent long before).
	exchange(t, f, "udp", query("good.example", dns.TypeA))
	if n := up.udpQ.Load() + up.tcpQ.Load(); n != 1 {
		t.Errorf("upstream saw %d queries, want only the good one", n)
	}
	waitFor(t, func() bool { return f.Stats().FormErr == uint64(sent) })
	if s := f.Stats(); s.Malformed != uint64(sent) || s.CacheMisses != 1 || s.CacheHits != 0 {
		t.Errorf("stats %+v: want %d malformed, one miss", s, sent)
	}
}

func TestWellFormedQueriesServed(t *testing.T) {
	up := startUpstream(t, answerA("192.0.2.12", 60))
	f := startForwarder(t, up.addr, func(c *Config) { c.CacheSize = -1 })
	c, err := net.Dial("udp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range wellFormedQueries {
		t.Run(tc.name, func(t *testing.T) {
			c.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := c.Write(tc.msg); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 65535)
			n, err := c.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(buf[:n]); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Fatalf("answer %v (%v), want NOERROR with an A record", r, err)
			}
		})
	}
	if n := up.udpQ.Load(); n != int64(len(wellFormedQueries)) {
		t.Errorf("upstream saw %d queries, want %d", n, len(wellFormedQueries))
	}
}
