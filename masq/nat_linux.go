package masq

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
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
// table whole: anything another program put into it goes. Elements with a
// timeout (the local sets' destinations, device windows) are carried over
// with the time they have left, so a repair neither forgets a route the
// DNS forwarder promised nor ends a window. With neither Masquerade nor the
// breakout it removes the table instead. It is idempotent: after any number
// of calls there is one table as String prints it.
func (n *NAT) Apply() error {
	if !n.cfg.installs() {
		return n.Remove()
	}
	c, err := nftables.New(n.opts...)
	if err != nil {
		return opErr("open nftables", err)
	}
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	kept, err := timedElements(c, n.cfg)
	if err != nil {
		return err
	}
	// Add before delete: the delete then never fails for a missing table,
	// and the kernel applies the batch as one, so no packet sees a gap.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	tp := plan(n.cfg)
	for _, sp := range tp.sets {
		s := &nftables.Set{Table: t, Name: sp.name, KeyType: sp.keyType, HasTimeout: true, Counter: sp.counter}
		if err := c.AddSet(s, append(sp.elements, kept[sp.name]...)); err != nil {
			return opErr("prepare set "+sp.name, err)
		}
	}
	for _, cp := range tp.chains {
		ch := c.AddChain(&nftables.Chain{
			Name:     cp.name,
			Table:    t,
			Type:     cp.typ,
			Hooknum:  cp.hook,
			Priority: cp.prio,
			Policy:   policyRef(nftables.ChainPolicyAccept),
		})
		for _, r := range cp.rules {
			note := cmp.Or(r.note, cp.ruleNote)
			c.AddRule(&nftables.Rule{
				Table:    t,
				Chain:    ch,
				Exprs:    r.exprs,
				UserData: userdata.AppendString(nil, userdata.TypeComment, note),
			})
		}
	}
	if err := c.Flush(); err != nil {
		return opErr("install table inet "+TableName, err)
	}
	return nil
}

// timedElements reads the elements with a timeout of the breakout's sets
// now in the kernel, by set, each with the time it has left as its timeout;
// a configured Bypass element is left to the plan. A missing table or set
// holds none.
func timedElements(c *nftables.Conn, cfg Config) (map[string][]nftables.SetElement, error) {
	if !cfg.Breakout.Enabled {
		return nil, nil
	}
	t, err := findTable(c)
	if err != nil || t == nil {
		return nil, err
	}
	sets, err := c.GetSets(t)
	if err != nil {
		return nil, opErr("list sets", err)
	}
	out := make(map[string][]nftables.SetElement)
	for _, sp := range plan(cfg).sets {
		i := slices.IndexFunc(sets, func(s *nftables.Set) bool { return s.Name == sp.name })
		if i < 0 || sets[i].KeyType.Name != sp.keyType.Name || !sets[i].HasTimeout {
			continue // Apply makes it anew
		}
		els, err := c.GetSetElements(sets[i])
		if err != nil {
			return nil, opErr("list elements of set "+sp.name, err)
		}
		for _, e := range els {
			// A configured element has no timeout; one of the plan's keys
			// would be added twice in one transaction.
			if e.Timeout == 0 || e.Expires <= 0 || slices.ContainsFunc(sp.elements, func(x nftables.SetElement) bool { return string(x.Key) == string(e.Key) }) {
				continue
			}
			out[sp.name] = append(out[sp.name], nftables.SetElement{Key: e.Key, Timeout: e.Expires})
		}
	}
	return out, nil
}

// Check compares the kernel's state with the desired one and changes
// nothing. It returns one line per difference (a missing table, set, chain
// or rule, a changed rule, a missing Bypass element, a rule, set or chain of
// someone else's in fobgw's table, a table present while nothing asks for
// it); none means no drift. Elements added at run time (the local sets,
// device windows) are not drift.
func (n *NAT) Check() ([]string, error) {
	c, err := nftables.New(n.opts...)
	if err != nil {
		return nil, opErr("open nftables", err)
	}
	t, err := findTable(c)
	if err != nil {
		return nil, err
	}
	if !n.cfg.installs() {
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
	tp := plan(n.cfg)
	sd, err := setsDrift(c, t, tp.sets)
	if err != nil {
		return nil, err
	}
	drift = append(drift, sd...)
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, opErr("list chains", err)
	}
	have := make(map[string]*nftables.Chain)
	for _, x := range chains {
		if x.Table == nil || x.Table.Name != TableName {
			continue
		}
		if !slices.ContainsFunc(tp.chains, func(cp chainPlan) bool { return cp.name == x.Name }) {
			drift = append(drift, fmt.Sprintf("table inet %s has a chain %s that fobgw did not make", TableName, x.Name))
			continue
		}
		have[x.Name] = x
	}
	for _, cp := range tp.chains {
		ch := have[cp.name]
		if ch == nil {
			drift = append(drift, fmt.Sprintf("chain %s is missing from table inet %s", cp.name, TableName))
			continue
		}
		if d := chainDrift(ch, cp); d != "" {
			drift = append(drift, d)
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return nil, opErr("list rules of chain "+cp.name, err)
		}
		for i, r := range cp.rules {
			switch {
			case i >= len(rules):
				drift = append(drift, fmt.Sprintf("rule %q is missing", r.text))
			case canonical(rules[i].Exprs) != canonical(r.exprs):
				drift = append(drift, fmt.Sprintf("rule %d of chain %s is not %q (handle %d)", i+1, cp.name, r.text, rules[i].Handle))
			}
		}
		for i := len(cp.rules); i < len(rules); i++ {
			drift = append(drift, fmt.Sprintf("rule %d of chain %s (handle %d) is not fobgw's", i+1, cp.name, rules[i].Handle))
		}
	}
	return drift, nil
}

// setsDrift compares the sets of table t with the planned ones.
func setsDrift(c *nftables.Conn, t *nftables.Table, want []setPlan) ([]string, error) {
	sets, err := c.GetSets(t)
	if err != nil {
		return nil, opErr("list sets", err)
	}
	var drift []string
	for _, s := range sets {
		if !slices.ContainsFunc(want, func(sp setPlan) bool { return sp.name == s.Name }) {
			drift = append(drift, fmt.Sprintf("table inet %s has a set %s that fobgw did not make", TableName, s.Name))
		}
	}
	for _, sp := range want {
		i := slices.IndexFunc(sets, func(s *nftables.Set) bool { return s.Name == sp.name })
		if i < 0 {
			drift = append(drift, fmt.Sprintf("set %s is missing from table inet %s", sp.name, TableName))
			continue
		}
		s := sets[i]
		if s.KeyType.Name != sp.keyType.Name || !s.HasTimeout || s.IsMap || s.Interval {
			drift = append(drift, fmt.Sprintf("set %s is not of type %s with flags timeout", sp.name, sp.keyType.Name))
			continue
		}
		if len(sp.elements) == 0 {
			continue
		}
		els, err := c.GetSetElements(s)
		if err != nil {
			return nil, opErr("list elements of set "+sp.name, err)
		}
		for j, e := range sp.elements {
			if !slices.ContainsFunc(els, func(x nftables.SetElement) bool { return string(x.Key) == string(e.Key) && x.Timeout == 0 }) {
				drift = append(drift, fmt.Sprintf("set %s lacks %s", sp.name, sp.texts[j]))
			}
		}
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

func chainDrift(ch *nftables.Chain, cp chainPlan) string {
	ok := ch.Type == cp.typ &&
		ch.Hooknum != nil && *ch.Hooknum == *cp.hook &&
		ch.Priority != nil && *ch.Priority == *cp.prio &&
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
	return fmt.Sprintf("chain %s is type %q hook %s priority %s policy %s, want %s (hook %d priority %d)",
		cp.name, ch.Type, hook, prio, policy, strings.TrimSuffix(cp.header, ";"), *cp.hook, *cp.prio)
}

// canonical is a rule's expressions as text for comparison; the kernel's
// rules decode into the same types and fields as plan builds, but for a ct
// store: the library decodes "ct mark set" without its source register
// (Register 0, which no load can have), so a ct expression in register 0
// reads as the store from register 1 that plan writes.
func canonical(es []expr.Any) string {
	var b strings.Builder
	for _, e := range es {
		if ct, ok := e.(*expr.Ct); ok && ct.Register == 0 && !ct.SourceRegister {
			e = &expr.Ct{Register: 1, SourceRegister: true, Key: ct.Key, Direction: ct.Direction}
		}
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
