package masq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// NAT installs, checks and removes fobgw's table. Its methods are not safe
// for concurrent use; the gateway calls them from one goroutine. Each call
// opens its own netlink socket: NAT holds no kernel resource between calls.
type NAT struct {
	cfg  Config
	opts []nftables.ConnOption
}

// Option configures a NAT.
type Option func(*NAT)

// WithNetNS makes the NAT work in the network namespace fd refers to (an
// open namespace file, such as a netns.NsHandle); the NAT does not close it.
// Without it, each call works in the namespace of the calling OS thread.
func WithNetNS(fd int) Option {
	return func(n *NAT) { n.opts = append(n.opts, nftables.WithNetNSFd(fd)) }
}

// New returns a NAT for cfg; it returns an error wrapping ErrConfig if cfg is
// invalid. Nothing is changed yet.
func New(cfg Config, opts ...Option) (*NAT, error) {
	norm, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	n := &NAT{cfg: norm}
	for _, o := range opts {
		o(n)
	}
	return n, nil
}

// String is the desired state in nft(8) syntax, for `fobgw check`.
func (n *NAT) String() string { return describe(n.cfg) }

// Apply installs the desired state in one transaction, replacing fobgw's
// table whole (anything another program put into it goes); with
// Config.Enabled false it removes the table instead. It is idempotent:
// after any number of calls there is one table with one rule per LAN
// prefix.
func (n *NAT) Apply() error {
	if !n.cfg.Enabled {
		return n.Remove()
	}
	c, err := nftables.New(n.opts...)
	if err != nil {
		return opErr("open nftables", err)
	}
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	// Add before delete: the delete then never fails for a missing table,
	// and the kernel applies the batch as one, so no packet sees a gap.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	ch := c.AddChain(&nftables.Chain{
		Name:     ChainName,
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
		Policy:   policyRef(nftables.ChainPolicyAccept),
	})
	for _, p := range n.cfg.LAN {
		c.AddRule(&nftables.Rule{
			Table:    t,
			Chain:    ch,
			Exprs:    ruleExprs(n.cfg.TunnelInterface, p),
			UserData: userdata.AppendString(nil, userdata.TypeComment, "fobgw Masquerade"),
		})
	}
	if err := c.Flush(); err != nil {
		return opErr("install table inet "+TableName, err)
	}
	return nil
}

// Check compares the kernel's state with the desired one and changes
// nothing. It returns one line per difference (a missing table, chain or
// rule, a changed rule, a rule or chain of someone else's in fobgw's table,
// a table present while Masquerade is off); none means no drift.
func (n *NAT) Check() ([]string, error) {
	c, err := nftables.New(n.opts...)
	if err != nil {
		return nil, opErr("open nftables", err)
	}
	t, err := findTable(c)
	if err != nil {
		return nil, err
	}
	if !n.cfg.Enabled {
		if t != nil {
			return []string{fmt.Sprintf("table inet %s is present while Masquerade is off", TableName)}, nil
		}
		return nil, nil
	}
	if t == nil {
		return []string{fmt.Sprintf("table inet %s is missing", TableName)}, nil
	}
	var drift []string
	// The library reads the big-endian NFTA_TABLE_FLAGS in host order:
	// turn the bytes back into the kernel's value.
	flags := binary.BigEndian.Uint32(binary.NativeEndian.AppendUint32(nil, t.Flags))
	if flags&unix.NFT_TABLE_F_DORMANT != 0 {
		drift = append(drift, fmt.Sprintf("table inet %s is dormant", TableName))
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, opErr("list chains", err)
	}
	var ch *nftables.Chain
	for _, x := range chains {
		switch {
		case x.Table == nil || x.Table.Name != TableName:
		case x.Name == ChainName:
			ch = x
		default:
			drift = append(drift, fmt.Sprintf("table inet %s has a chain %s that fobgw did not make", TableName, x.Name))
		}
	}
	if ch == nil {
		return append(drift, fmt.Sprintf("chain %s is missing from table inet %s", ChainName, TableName)), nil
	}
	if d := chainDrift(ch); d != "" {
		drift = append(drift, d)
	}
	rules, err := c.GetRules(t, ch)
	if err != nil {
		return nil, opErr("list rules of chain "+ChainName, err)
	}
	for i, p := range n.cfg.LAN {
		want := ruleText(n.cfg.TunnelInterface, p)
		switch {
		case i >= len(rules):
			drift = append(drift, fmt.Sprintf("rule %q is missing", want))
		case canonical(rules[i].Exprs) != canonical(ruleExprs(n.cfg.TunnelInterface, p)):
			drift = append(drift, fmt.Sprintf("rule %d is not %q (handle %d)", i+1, want, rules[i].Handle))
		}
	}
	for i := len(n.cfg.LAN); i < len(rules); i++ {
		drift = append(drift, fmt.Sprintf("rule %d (handle %d) is not fobgw's", i+1, rules[i].Handle))
	}
	return drift, nil
}

// Repair runs Check and, if it found drift, Apply. It returns what Check
// found (empty: nothing was done).
func (n *NAT) Repair() ([]string, error) {
	drift, err := n.Check()
	if err != nil || len(drift) == 0 {
		return drift, err
	}
	if err := n.Apply(); err != nil {
		return drift, fmt.Errorf("repair (%s): %w", strings.Join(drift, "; "), err)
	}
	return drift, nil
}

// Remove deletes fobgw's table, whatever configuration installed it. A
// missing table, or a kernel without nf_tables, is not an error.
func (n *NAT) Remove() error {
	c, err := nftables.New(n.opts...)
	if err != nil {
		return opErr("open nftables", err)
	}
	t, err := findTable(c)
	if err != nil {
		if errors.Is(err, syscall.EPROTONOSUPPORT) || errors.Is(err, syscall.ENOENT) {
			return nil // no nf_tables: nothing can be installed
		}
		return err
	}
	if t == nil {
		return nil
	}
	c.DelTable(t)
	if err := c.Flush(); err != nil && !errors.Is(err, syscall.ENOENT) {
		return opErr("delete table inet "+TableName, err)
	}
	return nil
}

func findTable(c *nftables.Conn) (*nftables.Table, error) {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, opErr("list tables", err)
	}
	for _, t := range tables {
		if t.Name == TableName {
			return t, nil
		}
	}
	return nil, nil
}

func chainDrift(ch *nftables.Chain) string {
	ok := ch.Type == nftables.ChainTypeNAT &&
		ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookPostrouting &&
		ch.Priority != nil && *ch.Priority == *nftables.ChainPriorityNATSource &&
		(ch.Policy == nil || *ch.Policy == nftables.ChainPolicyAccept)
	if ok {
		return ""
	}
	hook, prio, policy := "none", "none", "accept"
	if ch.Hooknum != nil {
		hook = fmt.Sprint(*ch.Hooknum)
	}
	if ch.Priority != nil {
		prio = fmt.Sprint(*ch.Priority)
	}
	if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
		policy = "drop"
	}
	return fmt.Sprintf("chain %s is type %q hook %s priority %s policy %s, want type nat hook postrouting (%d) priority srcnat (%d) policy accept",
		ChainName, ch.Type, hook, prio, policy, *nftables.ChainHookPostrouting, *nftables.ChainPriorityNATSource)
}

// ruleExprs is ruleText in nftables expressions, in the order nft(8)
// compiles it: oifname, the family (an inet table sees both), the source
// prefix, masquerade.
func ruleExprs(ifname string, p netip.Prefix) []expr.Any {
	var name [unix.IFNAMSIZ]byte // compared whole: "fobgw0" must not match "fobgw01"
	copy(name[:], ifname)
	nfproto, off := byte(unix.NFPROTO_IPV4), uint32(12) // IPv4 source address: RFC 791
	if p.Addr().Is6() {
		nfproto, off = unix.NFPROTO_IPV6, 8 // IPv6 source address: RFC 8200
	}
	addr := p.Addr().AsSlice()
	es := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name[:]},
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
	}
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

// canonical is a rule's expressions as text for comparison; the kernel's
// rules decode into the same types and fields as ruleExprs builds.
func canonical(es []expr.Any) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%T%+v;", e, e)
	}
	return b.String()
}

func policyRef(p nftables.ChainPolicy) *nftables.ChainPolicy { return &p }

// opErr wraps a netlink error with what was being done and, where a person
// can act, what to do.
func opErr(op string, err error) error {
	switch {
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("masquerade: %s: %w: fobgw needs CAP_NET_ADMIN (run it as root or with the capability)", op, err)
	case errors.Is(err, syscall.EPROTONOSUPPORT), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("masquerade: %s: %w: the kernel lacks nftables NAT (Linux 5.2 or later with nf_tables, nft_chain_nat and nft_masq; try modprobe nft_masq), or set Masquerade = off", op, err)
	default:
		return fmt.Errorf("masquerade: %s: %w", op, err)
	}
}
