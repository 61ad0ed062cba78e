package policyroute

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// SavedSysctls are sysctl values as they were before the Router wrote them
// (see SaveSysctls).
type SavedSysctls []Sysctl

// SaveSysctls reads the current values of the state's sysctls that outlive
// the tunnel (forwarding; the tunnel's rp_filter goes with its interface),
// under the Router's sysctl root and in its namespace (WithSysctlRoot,
// WithNetNS), so that RestoreSysctls can put them back. Call it before
// ApplyKillSwitch when nothing else is to keep forwarding on once fobgw
// stops (KillSwitch off).
func (r *Router) SaveSysctls() (SavedSysctls, error) {
	var out SavedSysctls
	for _, s := range r.state.Sysctls {
		if s.NeedsTunnel() {
			continue
		}
		path := filepath.Join(r.sysctlRoot, s.path)
		var v []byte
		err := r.inNS(func() (err error) {
			v, err = os.ReadFile(path)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("policyroute: read %s before changing it: %w", s.Key, err)
		}
		s.Value = strings.TrimSpace(string(v))
		out = append(out, s)
	}
	return out, nil
}

// RestoreSysctls writes the saved values back where they differ now and
// returns those it wrote; it tries every one, and joins the errors.
func (r *Router) RestoreSysctls(saved SavedSysctls) (restored []Sysctl, err error) {
	var errs []error
	for _, s := range saved {
		n, err := r.ensureSysctl(s)
		if err != nil {
			errs = append(errs, err)
		}
		if n > 0 {
			restored = append(restored, s)
		}
	}
	return restored, errors.Join(errs...)
}

// ensureSysctl writes s if it differs and reports whether it did.
func (r *Router) ensureSysctl(s Sysctl) (int, error) {
	path := filepath.Join(r.sysctlRoot, s.path)
	var n int
	err := r.inNS(func() error {
		cur, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(cur)) == s.Value {
			return nil
		}
		if err := os.WriteFile(path, []byte(s.Value+"\n"), 0o644); err != nil {
			return err
		}
		n = 1
		return nil
	})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && s.NeedsTunnel() {
			return n, fmt.Errorf("policyroute: set %s: %w: %s is missing, the tunnel interface %q is gone",
				s.Key, ErrNoInterface, path, r.cfg.TunnelInterface)
		}
		if errors.Is(err, os.ErrNotExist) {
			return n, fmt.Errorf("policyroute: set %s: %w: this kernel has no such setting (is IPv6 disabled? then leave IPv6 prefixes out of LAN)", s.Key, err)
		}
		return n, r.opErr("set sysctl", s.String(), err)
	}
	return n, nil
}

// inNS runs fn on a thread in r.ns, or on the calling thread without WithNetNS.
func (r *Router) inNS(fn func() error) error {
	if r.ns == -1 {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(r.ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace for sysctls: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked and dies with the goroutine.
		return errors.Join(ferr, fmt.Errorf("restore network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}
