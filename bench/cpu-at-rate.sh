#!/usr/bin/env bash
# cpu-at-rate.sh: the gateway's CPU per Gbit at a fixed offered rate, builds alternated.
#
#   bash bench/cpu-at-rate.sh LABEL=BINDIR [LABEL=BINDIR...]
#
# Each BINDIR holds a fobgw binary (and what `lab.sh build` puts beside it). Every round runs each
# build in turn as the lab's gateway (`lab.sh gw fobgw auto`), offers STREAMS iperf3 streams of
# RATE each (2 s to warm up, then SECS measured) and prints one line per build and round:
#
#   LABEL ROUND GBIT_PER_S CPU_MS_PER_GBIT
#
# CPU is the gateway process's user and system time (`lab.sh gw-cputicks`) across the measured run,
# per Gbit delivered. At a rate every build carries, the builds do the same work, so the figure
# compares their efficiency where throughput.sh's full-speed rounds mix it with how fast the
# shared machine happened to be; pair the builds round by round.
#
# Environment: ROUNDS (5), STREAMS (8), RATE (75M, per stream, iperf3 -b), SECS (10),
#              UP=1 (upload; default download, iperf3 -R), FOBL_NS (default cr), FOBL_DIR.
# Needs root and the Debian packages of `make deps`; the lab's namespaces go when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -eq 0 ]]; then
	echo "usage: bash bench/cpu-at-rate.sh LABEL=BINDIR [LABEL=BINDIR...]" >&2
	exit 2
fi
for spec in "$@"; do
	if [[ $spec != *=* || ! -x ${spec#*=}/fobgw ]]; then
		echo "cpu-at-rate: $spec: want LABEL=BINDIR with an executable BINDIR/fobgw" >&2
		exit 2
	fi
done

ROUNDS=${ROUNDS:-5} STREAMS=${STREAMS:-8} RATE=${RATE:-75M} SECS=${SECS:-10}
export FOBL_NS=${FOBL_NS:-cr}
export FOBL_DIR=${FOBL_DIR:-/run/$FOBL_NS}
dir=()
[[ ${UP:-} == 1 ]] || dir=(-R)
lab() { bash bench/lab.sh "$@"; }
trap 'lab down >/dev/null 2>&1 || true' EXIT

lab up >/dev/null
lab x web iperf3 -s -D
hz=$(getconf CLK_TCK)
for round in $(seq 1 "$ROUNDS"); do
	for spec in "$@"; do
		label=${spec%%=*}
		FOBL_BIN=${spec#*=} lab gw fobgw auto >/dev/null
		lab x client iperf3 -c 203.0.113.80 -t 2 "${dir[@]}" -P "$STREAMS" -b "$RATE" >/dev/null
		t0=$(lab gw-cputicks)
		bytes=$(lab x client iperf3 -c 203.0.113.80 -t "$SECS" "${dir[@]}" -P "$STREAMS" -b "$RATE" -J |
			python3 -c 'import json, sys; print(json.load(sys.stdin)["end"]["sum_received"]["bytes"])')
		t1=$(lab gw-cputicks)
		python3 -c "
gbit = $bytes * 8 / 1e9
cpu_ms = ($t1 - $t0) / $hz * 1000
print('$label', $round, round(gbit / $SECS, 3), round(cpu_ms / gbit, 1))"
	done
done
