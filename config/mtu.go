package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/fobgw/fobgw/pmtud"
	"golang.zx2c4.com/wireguard/device"
)

// The MTU key and what it means for path MTU discovery.

// MaxMTU is the largest tunnel MTU that fobgw's wireguard-go holds: its packet buffers are
// sized for the MTU (one 2 KiB size class: transport header, MTU with padding, tag), with a few
// 64 KiB buffers only where GRO and GSO coalesce (patches/wireguard).
const MaxMTU = device.MaxContentSize

// parseMTU parses the MTU key: "auto" is 0, a number is the ceiling.
func parseMTU(v string) (int, string) {
	if strings.EqualFold(v, "auto") {
		return 0, ""
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 576 || n > MaxMTU {
		return 0, fmt.Sprintf("%q is not a usable MTU", v)
	}
	return n, ""
}

// MTUCeiling is the largest MTU the tunnel uses: the configured number, or
// pmtud.DefaultCeiling for MTU = auto. The TUN starts at it, and path MTU
// discovery keeps the effective MTU at min(ceiling, measured path).
func (c *Config) MTUCeiling() int { return pmtud.Ceiling(c.MTU) }

// MTUText describes the MTU setting for `fobgw check`.
func (c *Config) MTUText() string {
	ceiling := c.MTUCeiling()
	var s string
	if c.MTU == 0 {
		s = fmt.Sprintf("auto (ceiling %d, measured at run time)", ceiling)
	} else {
		s = fmt.Sprintf("%d (ceiling; the path measured at run time may lower it)", ceiling)
	}
	if why := c.PMTUOff(); why != "" {
		s += "; path MTU discovery off: " + why
	}
	return s
}

// PMTUTarget is the address path MTU probes are echoed by: Probe's, which
// must be IPv4, like one of the tunnel's addresses.
func (c *Config) PMTUTarget() netip.Addr { return c.Probe.Addr() }

// PMTUOff says why c leaves path MTU discovery off, "" when it is on.
func (c *Config) PMTUOff() string {
	has4 := false
	for _, a := range c.Address {
		has4 = has4 || a.Addr().Is4()
	}
	switch {
	case !has4:
		return "the tunnel has no IPv4 address (probes are IPv4 only)"
	case !c.PMTUTarget().Is4():
		return fmt.Sprintf("Probe %v is not IPv4 (probes are IPv4 only; set Probe to an IPv4 address at home)", c.PMTUTarget())
	case c.MTUCeiling() <= pmtud.DefaultFloor:
		return fmt.Sprintf("the MTU %d is at or below the floor %d: nothing to search", c.MTUCeiling(), pmtud.DefaultFloor)
	}
	return ""
}
