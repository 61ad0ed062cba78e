package main

import (
	"os"
	"strings"
	"testing"
)

// TestPortalUsage: fobgw portal says what is wrong before it asks the
// gateway, with exit code 2; a gateway that does not run is exit code 1.
func TestPortalUsage(t *testing.T) {
	cfg := writeConfig(t, true)
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A name no gateway on this machine has: the commands must not reach one.
	data = []byte(strings.Replace(string(data), "Name = fobgw0", "Name = fgwportal9", 1))
	if err := os.WriteFile(cfg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	off := strings.Replace(cfg, "fobgw.conf", "off.conf", 1)
	if err := os.WriteFile(off, append(data, "PortalCheck = off\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no subcommand", []string{"portal"}, exitUsage, "needs open or close"},
		{"unknown subcommand", []string{"portal", "shut"}, exitUsage, `unknown portal command "shut"`},
		{"no config", []string{"portal", "open", "192.168.86.50"}, exitUsage, "missing -config"},
		{"no device", []string{"portal", "open", "-config", cfg}, exitUsage, "missing DEVICE"},
		{"two devices", []string{"portal", "open", "-config", cfg, "192.168.86.50", "192.168.86.51"}, exitUsage, `unexpected argument "192.168.86.51"`},
		{"outside the LAN", []string{"portal", "open", "-config", cfg, "192.168.2.9"}, exitUsage, "not inside LAN (192.168.86.0/24)"},
		{"not a device", []string{"portal", "open", "-config", cfg, "laptop"}, exitUsage, "neither an address nor a MAC address"},
		{"too long", []string{"portal", "open", "-config", cfg, "192.168.86.50", "-for", "45m"}, exitUsage, "longer than 30m0s"},
		{"not positive", []string{"portal", "open", "-for", "0s", "-config", cfg, "192.168.86.50"}, exitUsage, "not positive"},
		{"portal check off", []string{"portal", "open", "-config", off, "192.168.86.50"}, exitUsage, "PortalCheck = off"},
		{"not running", []string{"portal", "open", "-config", cfg, "02:11:22:33:44:55", "-for", "5m"}, exitRuntime, "not running (no answer on /run/fobgw/fgwportal9.sock)"},
		{"close, not running", []string{"portal", "close", "-name", "fgwnone0"}, exitRuntime, "not running"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, "", tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}
}
