package policyroute

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSaveRestoreSysctls: the forwarding sysctls read before Apply are
// written back by RestoreSysctls, under WithSysctlRoot, and the tunnel's
// rp_filter (which goes with its interface) is neither saved nor restored.
func TestSaveRestoreSysctls(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "net/ipv4/conf/fobgw0"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, v string) {
		if err := os.WriteFile(filepath.Join(dir, p), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	write("net/ipv4/ip_forward", "0")
	write("net/ipv4/conf/fobgw0/rp_filter", "1")
	r := w.router(t, storyConfig(), WithSysctlRoot(dir))
	saved, err := r.SaveSysctls()
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != 1 || saved[0].Key != "net.ipv4.ip_forward" || saved[0].Value != "0" {
		t.Fatalf("saved %v, want only net.ipv4.ip_forward=0", saved)
	}
	if err := r.Apply(); err != nil {
		t.Fatal(err)
	}
	if got := read("net/ipv4/ip_forward"); got != "1" {
		t.Fatalf("ip_forward after Apply = %s, want 1", got)
	}
	restored, err := r.RestoreSysctls(saved)
	if err != nil || len(restored) != 1 {
		t.Fatalf("RestoreSysctls = %v, %v; want ip_forward restored", restored, err)
	}
	if got := read("net/ipv4/ip_forward"); got != "0" {
		t.Errorf("ip_forward after restore = %s, want 0", got)
	}
	if got := read("net/ipv4/conf/fobgw0/rp_filter"); got != "2" {
		t.Errorf("rp_filter after restore = %s, want 2 (not saved, not restored)", got)
	}
	if restored, err := r.RestoreSysctls(saved); err != nil || len(restored) != 0 {
		t.Errorf("second RestoreSysctls = %v, %v; want nothing to do", restored, err)
	}
	os.Remove(filepath.Join(dir, "net/ipv4/ip_forward"))
	if _, err := r.SaveSysctls(); err == nil || !strings.Contains(err.Error(), "net.ipv4.ip_forward") {
		t.Errorf("SaveSysctls without the file = %v, want an error naming the sysctl", err)
	}
}
