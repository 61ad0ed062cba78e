package policyroute

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Config is the routing part of the gateway's configuration.
type Config struct {
	LAN             []netip.Prefix // IPv4 and optionally IPv6 LAN prefixes; host bits are ignored
	LANInterface    string         // e.g. br0
	Table           int            // resolved table number (see LookupTable)
	TunnelInterface string         // e.g. fobgw0
	HomeNetworks    []netip.Prefix // routed via the tunnel in the main table (gateway's own traffic)
	KillSwitch      bool

	// BypassMark, when not 0, is the packet mark (and mask) of the LAN's
	// traffic that leaves through the local ISP on purpose (local
	// breakout): a rule ahead of the LAN's sends such packets to the main
	// table. Who marks them is not this package's business.
	BypassMark uint32
}

var (
	// ErrConfig marks an invalid Config. Fatal: the configuration must be fixed.
	ErrConfig = errors.New("invalid policy routing configuration")

	// ErrUnknownTable marks a table name found in no rt_tables file. Fatal.
	ErrUnknownTable = errors.New("unknown routing table")

	// ErrNoInterface marks a missing LAN or tunnel interface. Fatal for
	// Apply; from Repair it means the tunnel went away (the kill switch has
	// been repaired regardless), and a later Repair may succeed.
	ErrNoInterface = errors.New("network interface not found")

	// ErrForeignRoute marks a route of another program where only fobgw's
	// belong: any route in the LAN's table, or a main-table route for
	// exactly a home network at a metric not above fobgw's. Such a route can
	// carry traffic past the tunnel and the kill switch, and fobgw never
	// deletes it: the error names it and says how to. Fatal for Apply (a
	// person must act); from Repair it repeats until the route is gone,
	// while everything else has been installed or repaired regardless.
	ErrForeignRoute = errors.New("route of another program in fobgw's place")
)

// Permission errors from the kernel (EPERM) are returned wrapped with advice;
// test them with errors.Is(err, os.ErrPermission).

// Reserved kernel tables that cannot serve as the LAN's table.
const (
	tableUnspec  = 0
	tableDefault = 253
	tableMain    = 254
	tableLocal   = 255
)

// defaultTableFiles are the files LookupTable reads, in order; a directory
// entry stands for its *.conf files.
var defaultTableFiles = []string{
	"/etc/iproute2/rt_tables",
	"/etc/iproute2/rt_tables.d",
	"/usr/share/iproute2/rt_tables",
	"/usr/share/iproute2/rt_tables.d",
}

// LookupTable resolves a routing table given as a number ("100") or as a name
// from /etc/iproute2/rt_tables, /usr/share/iproute2/rt_tables or their
// rt_tables.d/*.conf, as ip(8) does. It returns ErrUnknownTable, naming the
// files read, when the name is in none of them.
func LookupTable(s string) (int, error) {
	return lookupTable(s, defaultTableFiles)
}

func lookupTable(s string, files []string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("%w: Table is empty: give a number such as 100 or a name from /etc/iproute2/rt_tables", ErrConfig)
	}
	if n, err := strconv.ParseUint(s, 0, 32); err == nil {
		return int(n), nil
	}
	var read, missing []string
	for _, f := range expandTableFiles(files) {
		id, found, err := scanTableFile(f, s)
		if err != nil {
			missing = append(missing, f)
			continue
		}
		read = append(read, f)
		if found {
			return id, nil
		}
	}
	notRead := ""
	if len(missing) > 0 {
		notRead = fmt.Sprintf(" (not readable: %s)", strings.Join(missing, ", "))
	}
	return 0, fmt.Errorf("%w %q: not a number and not a name in %s%s; use a table number (e.g. Table = 100) or add a line \"100 %s\" to /etc/iproute2/rt_tables",
		ErrUnknownTable, s, listOrNone(read), notRead, s)
}

func listOrNone(files []string) string {
	if len(files) == 0 {
		return "no file (none could be read)"
	}
	return strings.Join(files, ", ")
}

// expandTableFiles replaces each directory ending in ".d" by its *.conf files,
// sorted; directories that do not exist are dropped, missing files are kept so
// that the error can name them.
func expandTableFiles(files []string) []string {
	var out []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".d") {
			out = append(out, f)
			continue
		}
		m, _ := filepath.Glob(filepath.Join(f, "*.conf"))
		sort.Strings(m)
		out = append(out, m...)
	}
	return out
}

// scanTableFile looks for name in one rt_tables file ("<id> <name>" lines,
// '#' comments).
func scanTableFile(path, name string) (id int, found bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[1] != name {
			continue
		}
		n, err := strconv.ParseUint(fields[0], 0, 32)
		if err != nil {
			continue
		}
		return int(n), true, nil
	}
	return 0, false, sc.Err()
}

// validate checks cfg and returns it normalised (prefixes masked, sorted
// IPv4 first, duplicates removed).
func (cfg Config) validate() (Config, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	if len(cfg.LAN) == 0 {
		return cfg, bad("LAN is empty: give the FOB LAN prefix, e.g. LAN = 192.168.86.0/24")
	}
	if err := checkIfName("LANInterface", cfg.LANInterface); err != nil {
		return cfg, err
	}
	if err := checkIfName("TunnelInterface", cfg.TunnelInterface); err != nil {
		return cfg, err
	}
	if cfg.LANInterface == cfg.TunnelInterface {
		return cfg, bad("LANInterface and the tunnel interface are both %q: the LAN must be a different interface (e.g. br0)", cfg.LANInterface)
	}
	switch cfg.Table {
	case tableUnspec, tableDefault, tableMain, tableLocal:
		return cfg, bad("Table %d is reserved by the kernel (0 unspec, 253 default, 254 main, 255 local): choose a free table such as 100", cfg.Table)
	}
	if cfg.Table < 0 || int64(cfg.Table) > 0xffffffff {
		return cfg, bad("Table %d is out of range 1..4294967295", cfg.Table)
	}
	var err error
	if cfg.LAN, err = normPrefixes("LAN", cfg.LAN); err != nil {
		return cfg, err
	}
	if cfg.HomeNetworks, err = normPrefixes("HomeNetworks", cfg.HomeNetworks); err != nil {
		return cfg, err
	}
	for _, h := range cfg.HomeNetworks {
		if h.Bits() == 0 {
			return cfg, bad("HomeNetworks %s is a default route: the gateway's own traffic must keep the local ISP so the tunnel can heal; list the home LAN prefixes instead", h)
		}
		for _, l := range cfg.LAN {
			if h.Overlaps(l) {
				return cfg, bad("HomeNetworks %s overlaps LAN %s: the FOB LAN and the home networks must be different prefixes", h, l)
			}
		}
	}
	return cfg, nil
}

func checkIfName(field, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: %s is empty: name the interface, e.g. br0 or fobgw0", ErrConfig, field)
	case len(name) > 15:
		return fmt.Errorf("%w: %s %q is longer than 15 bytes, the kernel's limit for interface names", ErrConfig, field, name)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n"):
		return fmt.Errorf("%w: %s %q is not a valid interface name", ErrConfig, field, name)
	}
	return nil
}

func normPrefixes(field string, ps []netip.Prefix) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ps))
	seen := make(map[netip.Prefix]bool)
	for _, p := range ps {
		if !p.IsValid() {
			return nil, fmt.Errorf("%w: %s holds an invalid prefix %q", ErrConfig, field, p)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.Addr().Zone() != "" {
			return nil, fmt.Errorf("%w: %s %s has a zone; give a plain prefix", ErrConfig, field, p)
		}
		p = p.Masked()
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Addr().Is4() != out[j].Addr().Is4() {
			return out[i].Addr().Is4()
		}
		return false
	})
	return out, nil
}
