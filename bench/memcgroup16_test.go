package bench

import (
	"strconv"
	"strings"
	"testing"
)

// TestMemoryCgroup16MiB: fobgw in a memory cgroup with a hard limit of 16 MiB, half the hAP
// lite's RAM, carries one TCP stream up and 8 down without an OOM kill, sizing wireguard-go's
// buffer pool from the limit (packets beyond it are dropped and counted, and TCP slows down);
// the client is still through afterwards. The same load without the limit, first, gives the
// throughput the limit is logged against.
//
// The binary's pages are in the page cache the build left, charged to the build's cgroup, as
// in TestMemoryCgroup: the limit holds fobgw's heap, stacks and kernel memory. Where fobgw
// reads its binary in itself (a board just booted), its ~13 MiB of resident text and data are
// charged too, and 16 MiB is then too little (bench/RESULTS.md, run 8).
func TestMemoryCgroup16MiB(t *testing.T) {
	if lab.gateway != "fobgw" {
		t.Skip("the memory limit is fobgw's (FOBL_E2E_GATEWAY=stock runs the stock recipe)")
	}
	const limit = 16 << 20
	lab.lab(t, "gw", "fobgw", "auto")
	freeUp := iperf(t, 5)
	freeDown := iperf(t, 5, "-R", "-P", "8")

	cg := newMemcg(t, "fobgw-e2e-"+nsName("memcg16"), limit)
	// Registered after the cgroup's removal, so run before it: the gateway leaves the cgroup.
	t.Cleanup(func() { lab.lab(t, "gw", "fobgw", "auto") })
	lab.labWith(t, []string{"FOBL_GW_CGROUP=" + cg.dir}, "gw", "fobgw", "auto")
	pid := lab.gatewayPID(t)
	if procs := cg.read(t, "cgroup.procs"); !strings.Contains("\n"+procs, "\n"+strconv.Itoa(pid)+"\n") {
		t.Fatalf("the gateway (pid %d) is not in %s: %q", pid, cg.dir, procs)
	}

	up := iperf(t, 5)
	down := iperf(t, 5, "-R", "-P", "8")
	t.Logf("under a %d MiB hard limit: up %.0f Mbit/s (1 stream), down %.0f Mbit/s (8 streams), cgroup peak %s;"+
		" without it: %.0f and %.0f (%.2fx and %.2fx)",
		limit>>20, up, down, cg.peak(t), freeUp, freeDown, up/freeUp, down/freeDown)

	if n := cg.oomKills(t); n != 0 {
		t.Errorf("the OOM killer killed %d processes in the cgroup", n)
	}
	if !alive(pid) {
		t.Fatalf("the gateway (pid %d) died under the memory limit; its log ends with:\n%s", pid, lab.gatewayLog())
	}
	if got, err := publicAddress("client"); err != nil || got != lab.begAddress(t) {
		t.Errorf("after the load the client reaches web as %q (%v), want the home router's %s", got, err, lab.begAddress(t))
	}
}
