package gateway

import (
	"errors"
	"fmt"
	"slices"

	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/masq"
)

// Masquerade = on|off: the masq table, installed after the tunnel routes by
// start, repaired with them by repairRoutes, removed by stop and by Down.

// masqConfig is the masq part of cfg.
func masqConfig(cfg *config.Config) masq.Config {
	return masq.Config{Enabled: cfg.Masquerade, LAN: slices.Clone(cfg.LAN), TunnelInterface: cfg.Name, Breakout: breakoutConfig(cfg)}
}

// newNAT returns the NAT for cfg; its configuration errors are *ConfigError.
func newNAT(cfg *config.Config) (*masq.NAT, error) {
	n, err := masq.New(masqConfig(cfg))
	if errors.Is(err, masq.ErrConfig) {
		return nil, &config.ConfigError{File: cfg.File, Key: "Masquerade", Problem: err.Error(), Expected: "fix the [Gateway] section"}
	}
	return n, err
}

// removeNAT deletes fobgw's masquerade table, whatever installed it.
func removeNAT() error {
	n, err := masq.New(masq.Config{Enabled: false})
	if err == nil {
		err = n.Remove()
	}
	if err != nil {
		return fmt.Errorf("remove the masquerade table (table inet %s): %w", masq.TableName, err)
	}
	return nil
}

// onOff spells a boolean key's value.
func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
