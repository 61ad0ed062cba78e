package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// join writes xs with sep between them, for messages.
func join[T fmt.Stringer](xs []T, sep string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = x.String()
	}
	return strings.Join(s, sep)
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parsePrefixList parses "a/n, b/n". With network set, host bits must be zero.
func parsePrefixList(v string, network bool) ([]netip.Prefix, string) {
	var out []netip.Prefix
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, "empty element in the list"
		}
		var p netip.Prefix
		var err error
		if strings.Contains(f, "/") {
			p, err = netip.ParsePrefix(f)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(f)
			if err == nil {
				if a.Zone() != "" {
					return nil, fmt.Sprintf("%q has a zone", f)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, fmt.Sprintf("%q is not a prefix", f)
		}
		if network && p.Masked() != p {
			return nil, fmt.Sprintf("%q has host bits set (the network is %v)", f, p.Masked())
		}
		out = append(out, p)
	}
	return out, ""
}

func parseAddrPort(v string, defPort uint16) (netip.AddrPort, string) {
	if a, err := netip.ParseAddr(v); err == nil {
		if a.Zone() != "" {
			return netip.AddrPort{}, fmt.Sprintf("%q has a zone", v)
		}
		if a.IsUnspecified() || a.IsMulticast() {
			return netip.AddrPort{}, fmt.Sprintf("%q is not a unicast address", v)
		}
		return netip.AddrPortFrom(a.Unmap(), defPort), ""
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		return netip.AddrPort{}, fmt.Sprintf("%q is not an address or address:port", v)
	}
	if ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() {
		return netip.AddrPort{}, fmt.Sprintf("%q is not a unicast address", v)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ""
}

// parseEndpointList parses "host:port, host:port, ...": at least one
// entry, no entry twice.
func parseEndpointList(v string) ([]Endpoint, string) {
	var out []Endpoint
	for _, f := range splitList(v) {
		e, msg := parseEndpoint(f)
		if msg != "" {
			return nil, msg
		}
		for _, x := range out {
			if x.String() == e.String() {
				return nil, fmt.Sprintf("%s is in the list twice", e)
			}
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, "no endpoint given"
	}
	return out, ""
}

func parseEndpoint(v string) (Endpoint, string) {
	i := strings.LastIndexByte(v, ':')
	if i < 0 {
		return Endpoint{}, fmt.Sprintf("%q has no port", v)
	}
	host, portStr := v[:i], v[i+1:]
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return Endpoint{}, fmt.Sprintf("%q is not a port", portStr)
	}
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return Endpoint{}, fmt.Sprintf("%q has an unclosed bracket", v)
		}
		host = host[1 : len(host)-1]
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return Endpoint{}, fmt.Sprintf("%q is not an IPv6 address", host)
		}
		return Endpoint{Host: host, Addr: a, Port: uint16(port)}, ""
	}
	if strings.Contains(host, ":") {
		return Endpoint{}, fmt.Sprintf("%q: an IPv6 address needs brackets", v)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.IsUnspecified() || a.IsMulticast() {
			return Endpoint{}, fmt.Sprintf("%q is not a unicast address", host)
		}
		return Endpoint{Host: host, Addr: a, Port: uint16(port)}, ""
	}
	if msg := checkHostname(host); msg != "" {
		return Endpoint{}, msg
	}
	return Endpoint{Host: strings.TrimSuffix(host, "."), Port: uint16(port)}, ""
}

func checkHostname(h string) string {
	name := strings.TrimSuffix(h, ".")
	if name == "" || len(name) > 253 {
		return fmt.Sprintf("%q is not a host name", h)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Sprintf("%q is not a host name (empty or long label)", h)
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_'
			if !ok {
				return fmt.Sprintf("%q is not a host name (character %q)", h, ch)
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Sprintf("%q is not a host name (label starts or ends with '-')", h)
		}
	}
	return ""
}

func checkIfName(s string) string {
	if s == "" || len(s) > 15 {
		return fmt.Sprintf("%q is not an interface name (1 to 15 characters)", s)
	}
	if s == "." || s == ".." {
		return fmt.Sprintf("%q is not an interface name", s)
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch <= ' ' || ch == '/' || ch == ':' || ch >= 0x7f {
			return fmt.Sprintf("%q is not an interface name (character %q)", s, ch)
		}
	}
	return ""
}

func checkListen(v string) string {
	if strings.HasPrefix(v, ":") {
		n, err := strconv.ParseUint(v[1:], 10, 16)
		if err != nil || n == 0 {
			return fmt.Sprintf("%q is not :port", v)
		}
		return ""
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil || ap.Port() == 0 {
		return fmt.Sprintf("%q is not address:port", v)
	}
	return ""
}

func parseBool(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "on", "yes", "true", "1":
		return true, true
	case "off", "no", "false", "0":
		return false, true
	}
	return false, false
}

// ParseEndpoints parses an Endpoint value ("host:port, host:port, ..."),
// as the Endpoint key does.
func ParseEndpoints(v string) ([]Endpoint, error) {
	es, msg := parseEndpointList(v)
	if msg != "" {
		return nil, errors.New(msg)
	}
	return es, nil
}
