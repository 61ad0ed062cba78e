// Package bench is the world of the story in network namespaces (lab.sh) and what is measured
// and tested in it: the end-to-end tests of fobgw (go test, as root: they fail, never skip,
// without it), `make demo` (demo.sh) and the lab benchmarks (throughput.sh, RESULTS.md).
//
// FOBL_E2E_GATEWAY=stock runs the same tests against the stock recipe (wireguard-go, ip rule,
// iptables TCPMSS) instead of fobgw, to show which of the story's failures it leaves open.
package bench
