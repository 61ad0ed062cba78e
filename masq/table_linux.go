package masq

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The table's contents as data: what Apply installs, Check compares and
// String prints come from one plan, so that they cannot disagree.

type setPlan struct {
	name     string
	keyType  nftables.SetDatatype
	counter  bool                  // per-element counters (bypassed devices)
	elements []nftables.SetElement // permanent elements (Bypass)
	texts    []string              // the elements as nft prints them
}

type rulePlan struct {
	text  string // in nft(8) syntax
	exprs []expr.Any
	note  string // the rule's comment in the kernel; empty: the chain's
}

func rule(text string, exprs []expr.Any) rulePlan { return rulePlan{text: text, exprs: exprs} }

type chainPlan struct {
	name     string
	typ      nftables.ChainType
	hook     *nftables.ChainHook
	prio     *nftables.ChainPriority
	header   string // the chain's first line in nft(8) syntax
	rules    []rulePlan
	ruleNote string // the rules' comment in the kernel
}

type tablePlan struct {
	sets   []setPlan
	chains []chainPlan
}

func plan(cfg Config) tablePlan {
	var tp tablePlan
	b := cfg.Breakout
	if b.Enabled {
		s4 := setPlan{name: SetBypass4, keyType: nftables.TypeIPAddr, counter: true}
		s6 := setPlan{name: SetBypass6, keyType: nftables.TypeIP6Addr, counter: true}
		for _, a := range b.Addrs {
			s := &s4
			if a.Is6() {
				s = &s6
			}
			s.elements = append(s.elements, nftables.SetElement{Key: a.AsSlice()})
			s.texts = append(s.texts, a.String())
		}
		sm := setPlan{name: SetBypassMAC, keyType: nftables.TypeEtherAddr, counter: true}
		for _, m := range b.MACs {
			sm.elements = append(sm.elements, nftables.SetElement{Key: []byte(m)})
			sm.texts = append(sm.texts, m.String())
		}
		tp.sets = append(tp.sets, s4, s6, sm,
			setPlan{name: SetLocal4, keyType: nftables.TypeIPAddr},
			setPlan{name: SetLocal6, keyType: nftables.TypeIP6Addr})

		lan := b.LANInterface
		mark := fmt.Sprintf("%#08x", Mark)
		first := fmt.Sprintf("iifname %q ct status ! confirmed", lan)
		ctSet := "ct mark set ct mark | " + mark
		iif := ifname(expr.MetaKeyIIFNAME, lan)
		tp.chains = append(tp.chains, chainPlan{
			// The way out is decided at a flow's first packet (its conntrack
			// entry not yet confirmed), kept in the ct mark and copied to
			// every later packet's mark: a flow never changes its way half
			// way, where no NAT would follow it.
			name: ChainMark, typ: nftables.ChainTypeFilter, hook: nftables.ChainHookPrerouting, prio: nftables.ChainPriorityMangle,
			header:   "type filter hook prerouting priority mangle; policy accept;",
			ruleNote: "fobgw local breakout",
			rules: []rulePlan{
				rule(fmt.Sprintf("%s ether saddr @%s %s", first, SetBypassMAC, ctSet),
					cat(iif, unconfirmed(true), etherSaddr(), lookup(SetBypassMAC), setMark(true))),
				rule(fmt.Sprintf("%s ip saddr @%s %s", first, SetBypass4, ctSet),
					cat(iif, unconfirmed(true), addrLoad(false, true), lookup(SetBypass4), setMark(true))),
				rule(fmt.Sprintf("%s ip6 saddr @%s %s", first, SetBypass6, ctSet),
					cat(iif, unconfirmed(true), addrLoad(true, true), lookup(SetBypass6), setMark(true))),
				rule(fmt.Sprintf("%s ip daddr @%s %s", first, SetLocal4, ctSet),
					cat(iif, unconfirmed(true), addrLoad(false, false), lookup(SetLocal4), setMark(true))),
				rule(fmt.Sprintf("%s ip6 daddr @%s %s", first, SetLocal6, ctSet),
					cat(iif, unconfirmed(true), addrLoad(true, false), lookup(SetLocal6), setMark(true))),
				rule(fmt.Sprintf("iifname %q ct mark & %s == %s meta mark set meta mark | %s", lan, mark, mark, mark),
					cat(iif, ctMarked(), setMark(false))),
			},
		}, chainPlan{
			// The device counters: a lookup counts in the element it
			// matches. The first packet of a flow was counted by the
			// prerouting chain. A MAC has no address to look up on the way
			// in, so its counters hold what the device sent.
			name: ChainCount, typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward, prio: nftables.ChainPriorityFilter,
			header:   "type filter hook forward priority filter; policy accept;",
			ruleNote: "fobgw bypass counters",
			rules: []rulePlan{
				rule(fmt.Sprintf("iifname %q ct status & confirmed == confirmed ether saddr @%s", lan, SetBypassMAC),
					cat(iif, unconfirmed(false), etherSaddr(), lookup(SetBypassMAC))),
				rule(fmt.Sprintf("iifname %q ct status & confirmed == confirmed ip saddr @%s", lan, SetBypass4),
					cat(iif, unconfirmed(false), addrLoad(false, true), lookup(SetBypass4))),
				rule(fmt.Sprintf("iifname %q ct status & confirmed == confirmed ip6 saddr @%s", lan, SetBypass6),
					cat(iif, unconfirmed(false), addrLoad(true, true), lookup(SetBypass6))),
				rule(fmt.Sprintf("oifname %q ip daddr @%s", lan, SetBypass4),
					cat(ifname(expr.MetaKeyOIFNAME, lan), addrLoad(false, false), lookup(SetBypass4))),
				rule(fmt.Sprintf("oifname %q ip6 daddr @%s", lan, SetBypass6),
					cat(ifname(expr.MetaKeyOIFNAME, lan), addrLoad(true, false), lookup(SetBypass6))),
			},
		})
	}
	nat := chainPlan{
		name: ChainName, typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPostrouting, prio: nftables.ChainPriorityNATSource,
		header:   "type nat hook postrouting priority srcnat; policy accept;",
		ruleNote: "fobgw Masquerade",
	}
	if cfg.Enabled {
		for _, p := range cfg.LAN {
			nat.rules = append(nat.rules, rulePlan{ruleText(cfg.TunnelInterface, p), ruleExprs(cfg.TunnelInterface, p), ""})
		}
	}
	if b.Enabled {
		mark := fmt.Sprintf("%#08x", Mark)
		nat.rules = append(nat.rules, rulePlan{
			fmt.Sprintf("iifname %q oifname != %q meta mark & %s == %s masquerade", b.LANInterface, cfg.TunnelInterface, mark, mark),
			cat(ifname(expr.MetaKeyIIFNAME, b.LANInterface), notIfname(cfg.TunnelInterface), metaMarked(), []expr.Any{&expr.Masq{}}),
			"fobgw local breakout",
		})
	}
	tp.chains = append(tp.chains, nat)
	return tp
}

// describe is the desired state in nft(8) syntax (what `nft list table inet
// fobgw` shows once it is installed, comments, counters and timeouts aside),
// or a line saying that there is none.
func describe(cfg Config) string {
	if !cfg.installs() {
		return fmt.Sprintf("masquerade off: no table inet %s\n", TableName)
	}
	tp := plan(cfg)
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	for i, s := range tp.sets {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n\t\tflags timeout\n", s.name, s.keyType.Name)
		if s.counter {
			b.WriteString("\t\tcounter\n")
		}
		if len(s.texts) > 0 {
			fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(s.texts, ", "))
		}
		b.WriteString("\t}\n")
	}
	for i, c := range tp.chains {
		if i > 0 || len(tp.sets) > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "\tchain %s {\n\t\t%s\n", c.name, c.header)
		for _, r := range c.rules {
			fmt.Fprintf(&b, "\t\t%s\n", r.text)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// ifname compares the input or output interface's name whole: "br0" must
// not match "br01".
func ifname(key expr.MetaKey, name string) []expr.Any {
	var b [unix.IFNAMSIZ]byte
	copy(b[:], name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b[:]},
	}
}

func notIfname(name string) []expr.Any {
	es := ifname(expr.MetaKeyOIFNAME, name)
	es[1].(*expr.Cmp).Op = expr.CmpOpNeq
	return es
}

// etherSaddr loads the Ethernet source address (IEEE 802.3: destination 6
// bytes, then source 6), after checking that the input interface is
// Ethernet, as nft(8) compiles `ether saddr`.
func etherSaddr() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFTYPE, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint16(nil, unix.ARPHRD_ETHER)},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
	}
}

// addrLoad checks the family (an inet table sees both) and loads the source
// or destination address: IPv4 at 12 and 16 (RFC 791), IPv6 at 8 and 24
// (RFC 8200).
func addrLoad(v6, src bool) []expr.Any {
	nfproto, off, n := byte(unix.NFPROTO_IPV4), uint32(16), uint32(4)
	if src {
		off = 12
	}
	if v6 {
		nfproto, off, n = unix.NFPROTO_IPV6, 24, 16
		if src {
			off = 8
		}
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
	}
}

func lookup(set string) []expr.Any {
	return []expr.Any{&expr.Lookup{SourceRegister: 1, SetName: set}}
}

// ipsConfirmed is the conntrack status bit of an entry in the table
// (IPS_CONFIRMED, include/uapi/linux/netfilter/nf_conntrack_common.h): clear
// only while the flow's first packet is on its way. A UDP flow without
// replies, or a TCP SYN sent again, is still "ct state new" later.
const ipsConfirmed = 1 << 3

// unconfirmed tests that the conntrack entry is not (first) or is
// confirmed.
func unconfirmed(first bool) []expr.Any {
	four := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	want := four(ipsConfirmed)
	if first {
		want = four(0)
	}
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: four(ipsConfirmed), Xor: four(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: want},
	}
}

// marked tests the Mark bit of the meta or ct mark.
func marked(load expr.Any) []expr.Any {
	m := binary.NativeEndian.AppendUint32(nil, Mark)
	return []expr.Any{
		load,
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: m},
	}
}

func ctMarked() []expr.Any   { return marked(&expr.Ct{Register: 1, Key: expr.CtKeyMARK}) }
func metaMarked() []expr.Any { return marked(&expr.Meta{Key: expr.MetaKeyMARK, Register: 1}) }

// setMark sets the Mark bit of the meta mark, or of the ct mark, keeping the
// other bits: mark = (mark & ^Mark) ^ Mark.
func setMark(ct bool) []expr.Any {
	var load, store expr.Any = &expr.Meta{Key: expr.MetaKeyMARK, Register: 1}, &expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1}
	if ct {
		load, store = &expr.Ct{Register: 1, Key: expr.CtKeyMARK}, &expr.Ct{Register: 1, Key: expr.CtKeyMARK, SourceRegister: true}
	}
	return []expr.Any{
		load,
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, ^Mark), Xor: binary.NativeEndian.AppendUint32(nil, Mark)},
		store,
	}
}

// ruleText is one Masquerade rule in nft(8) syntax, as String prints it.
func ruleText(ifname string, p netip.Prefix) string {
	fam := "ip"
	if p.Addr().Is6() {
		fam = "ip6"
	}
	return fmt.Sprintf("oifname %q %s saddr %s masquerade", ifname, fam, p)
}

// ruleExprs is ruleText in nftables expressions, in the order nft(8)
// compiles it: oifname, the family (an inet table sees both), the source
// prefix, masquerade.
func ruleExprs(name string, p netip.Prefix) []expr.Any {
	nfproto, off := byte(unix.NFPROTO_IPV4), uint32(12) // IPv4 source address: RFC 791
	if p.Addr().Is6() {
		nfproto, off = unix.NFPROTO_IPV6, 8 // IPv6 source address: RFC 8200
	}
	addr := p.Addr().AsSlice()
	es := append(ifname(expr.MetaKeyOIFNAME, name),
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
	)
	if p.Bits() > 0 {
		es = append(es, &expr.Payload{
			OperationType: expr.PayloadLoad,
			DestRegister:  1,
			Base:          expr.PayloadBaseNetworkHeader,
			Offset:        off,
			Len:           uint32(len(addr)),
		})
		if p.Bits() < len(addr)*8 {
			mask := make([]byte, len(addr))
			for i := 0; i < p.Bits(); i++ {
				mask[i/8] |= 0x80 >> (i % 8)
			}
			es = append(es, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(len(addr)),
				Mask: mask, Xor: make([]byte, len(addr))})
		}
		es = append(es, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr})
	}
	return append(es, &expr.Masq{})
}
