package gateway

import (
	"errors"
	"fmt"
	"os"

	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/policyroute"
	"github.com/vishvananda/netlink"
)

// Down removes every route and rule fobgw installed for cfg, the kill
// switch too, and a leftover TUN of that name. It refuses while the gateway
// runs.
func Down(cfg *config.Config, opt Options) error {
	log := opt.logger()
	ctlPath := ControlSocket(opt.RunDir, cfg.Name)
	if uapiAlive(cfg.Name) || socketAlive(ctlPath) {
		return fmt.Errorf("the gateway %s is running: stop it first (systemctl stop fobgw, or Ctrl-C), then run `fobgw down` again", cfg.Name)
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	r, err := policyroute.New(h, routeConfig(cfg))
	if err != nil {
		return routeErr(cfg, err)
	}
	var errs []error
	if err := r.Remove(false); err != nil {
		errs = append(errs, fmt.Errorf("remove routes and rules: %w", err))
	}
	if err := removeStaleLink(h, cfg.Name, log); err != nil {
		errs = append(errs, err)
	}
	if err := removeNAT(); err != nil {
		errs = append(errs, err)
	}
	for _, p := range []string{ctlPath, UAPIDir + "/" + cfg.Name + ".sock"} {
		if err := os.Remove(p); err == nil {
			log.Info("removed a stale socket", "path", p)
		}
	}
	return errors.Join(errs...)
}
