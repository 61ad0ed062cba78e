#!/usr/bin/env bash
# throughput.sh: lab benchmarks in the story's world (bench/lab.sh), in one run.
#
#  1. iperf3 client -> web, upload and download (-R), SECS seconds each, ROUNDS rounds alternated
#     over the paths: fobgw (ClampMSS auto), fobgw (ClampMSS off), the stock recipe
#     (wireguard-go of the version go.mod pins + ip rule + iptables TCPMSS), plain routing.
#     Peak RSS (VmHWM) of the gateway process at muc is read after one stream each way, then
#     after 8 streams each way (iperf3 -P 8, same SECS), in every round.
#  2. dnsperf from the client against fobgw's forwarder (192.168.86.1:53) and against dnsmasq on
#     the same gateway forwarding through the same tunnel (192.168.86.1:5353): uncached (unique
#     names), cached (one name), and a steady 3,000 queries/s that must lose nothing.
#
# Prints a Markdown report (also kept in $OUT/report.md; raw figures in $OUT).
# Environment: ROUNDS (3), SECS (10), DNS_SECS (6), PATHS (the four above, names:
# fobgw-auto fobgw-off stock plain; without a fobgw binary only stock and plain run; also
# fobgw-nolimit: fobgw-auto with GOMEMLIMIT=off; fobgw-base: fobgw-auto run from the binary BASE_BIN,
# a build of another commit, for an alternated A/B of two builds),
# IPERF_ARGS (extra iperf3 arguments for every path, e.g. "-M 1380" or "-P 2"), NO_DNS=1 (skip 2.),
# NO_BUILD=1 (use the binaries already in $FOBL_BIN).
# fobgw-off rounds run iperf3 with -M 1380 so the PMTUD black hole cannot stall their
# downloads: segments are then the same size as with the clamp, and only the clamp's cost differs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-10}
DNS_SECS=${DNS_SECS:-6}
OUT=${OUT:-$HERE/out/throughput-$(date -u +%Y%m%dT%H%M%SZ)}
export FOBL_NS=${FOBL_NS:-fobl}
NSP=$FOBL_NS
export FOBL_DIR=${FOBL_DIR:-/run/$NSP}
export FOBL_BIN=${FOBL_BIN:-$HERE/out/bin}
LAB=$FOBL_DIR

lab() { bash "$HERE/lab.sh" "$@"; }
say() { printf '%s\n' "$*" >&2; }

[[ $(id -u) == 0 ]] || {
	say "throughput.sh needs root (network namespaces)"
	exit 1
}

cleanup() {
	lab down || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT"
[[ -n ${NO_BUILD:-} ]] || lab build
if [[ -z ${PATHS:-} ]]; then
	if [[ -x $FOBL_BIN/fobgw ]]; then
		PATHS="fobgw-auto fobgw-off stock plain"
	else
		PATHS="stock plain"
		say "no fobgw binary: measuring only the stock recipe and plain routing"
	fi
fi
if [[ " $PATHS " == *" fobgw-base "* ]]; then
	[[ -x ${BASE_BIN:-} ]] || {
		say "the path fobgw-base needs BASE_BIN, a fobgw binary built from another commit"
		exit 1
	}
	# The lab's binaries, but fobgw from BASE_BIN.
	mkdir -p "$OUT/basebin"
	for f in "$FOBL_BIN"/*; do ln -sf "$f" "$OUT/basebin/"; done
	ln -sf "$(realpath "$BASE_BIN")" "$OUT/basebin/fobgw"
fi
read -r load_before _ </proc/loadavg
lab up

# gw_start PATH: bring the gateway of PATH up at muc.
gw_start() {
	case $1 in
	fobgw-auto) lab gw fobgw auto ;;
	fobgw-off) lab gw fobgw off ;;
	fobgw-nolimit) GOMEMLIMIT=off lab gw fobgw auto ;; # without fobgw's default soft memory limit
	fobgw-mem*) GOMEMLIMIT=${1#fobgw-mem}MiB lab gw fobgw auto ;; # fobgw-mem128: a 128 MiB soft limit
	fobgw-base) FOBL_BIN=$OUT/basebin lab gw fobgw auto ;;           # the build in BASE_BIN
	stock | plain) lab gw "$1" ;;
	*)
		say "unknown path $1"
		return 1
		;;
	esac
}

# iperf DIR EXTRA...: one iperf3 run from the client, prints the receiver's Mbit/s.
iperf() {
	local dir=$1
	shift
	local args=(-c 203.0.113.80 -t "$SECS" -f m --connect-timeout 3000 "$@")
	# shellcheck disable=SC2206
	args+=(${IPERF_ARGS:-})
	[[ $dir == down ]] && args+=(-R)
	timeout $((SECS + 20)) ip netns exec ${NSP}-client iperf3 "${args[@]}" >"$OUT/iperf.last" 2>&1 || true
	cat "$OUT/iperf.last" >>"$OUT/iperf.log"
	awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") v = $(i-1) } END { print (v == "" ? 0 : v) }' "$OUT/iperf.last"
}

vmhwm() {
	local pid
	pid=$(cat "$LAB/gw.pid" 2>/dev/null) || {
		echo -
		return
	}
	awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo -
}

# cputicks: user+system CPU clock ticks of the gateway process so far ("-" without one).
cputicks() {
	local pid
	pid=$(cat "$LAB/gw.pid" 2>/dev/null) || {
		echo -
		return
	}
	# Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the command name.
	sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo -
}

# cpu_per_gbit TICKS_BEFORE TICKS_AFTER MBITS: the gateway's CPU milliseconds per Gbit moved.
cpu_per_gbit() {
	awk -v a="$1" -v b="$2" -v m="$3" -v s="$SECS" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { if (a == "-" || b == "-" || m == 0) print "-"; else printf "%.0f", (b - a) * 1000 / hz / (m * s / 1000) }'
}

median() {
	sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2] + a[NR/2+1]) / 2 }'
}

# --- 1. throughput ---------------------------------------------------------------------------
: >"$OUT/iperf.tsv"
for r in $(seq "$ROUNDS"); do
	for p in $PATHS; do
		gw_start "$p" >>"$OUT/lab.log" 2>&1
		extra=()
		[[ $p == fobgw-off && " ${IPERF_ARGS:-} " != *" -M "* ]] && extra=(-M 1380)
		t0=$(cputicks)
		up=$(iperf up "${extra[@]}")
		t1=$(cputicks)
		down=$(iperf down "${extra[@]}")
		t2=$(cputicks)
		rss=$(vmhwm)
		cpu_up=$(cpu_per_gbit "$t0" "$t1" "$up")
		cpu_down=$(cpu_per_gbit "$t1" "$t2" "$down")
		up8=$(iperf up "${extra[@]}" -P 8)
		down8=$(iperf down "${extra[@]}" -P 8)
		rss8=$(vmhwm)
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$r" "$up" "$down" "$rss" "$cpu_up" "$cpu_down" \
			"$up8" "$down8" "$rss8" >>"$OUT/iperf.tsv"
		say "round $r $p: up $up Mbit/s, down $down Mbit/s, VmHWM $rss KiB, gateway CPU $cpu_up / $cpu_down ms per Gbit;" \
			"8 streams: up $up8, down $down8 Mbit/s, VmHWM $rss8 KiB"
	done
done

col() { # col PATH FIELD: the median of FIELD (3 up, 4 down, 5 rss, 6/7 CPU ms per Gbit up/down; 8 streams: 8 up, 9 down, 10 rss) over the rounds of PATH
	awk -v p="$1" -v f="$2" -F'\t' '$1 == p && $f != "-" && $f != "" { print $f }' "$OUT/iperf.tsv" | median
}
colmax() { # colmax PATH FIELD: the largest FIELD over the rounds of PATH
	awk -v p="$1" -v f="$2" -F'\t' '$1 == p && $f != "-" && $f != "" { if ($f + 0 > m) m = $f + 0 } END { print (m == "" ? "-" : m) }' "$OUT/iperf.tsv"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.3f", a / b }'; }
# ratio_row LABEL A B UP DOWN: a table row of path A's medians over path B's (fields UP and DOWN
# of col), when both paths ran.
ratio_row() {
	[[ " $PATHS " == *" $2 "* && " $PATHS " == *" $3 "* ]] || return 0
	echo "| $1 | $(ratio "$(col "$2" "$4")" "$(col "$3" "$4")") | $(ratio "$(col "$2" "$5")" "$(col "$3" "$5")") |"
}

# --- 2. DNS ----------------------------------------------------------------------------------
: >"$OUT/dns.tsv"
if [[ -z ${NO_DNS:-} ]]; then
dns_path=fobgw-auto
dns_if=fobgw0
[[ $NSP == fobl ]] || dns_if=${NSP}gw0 # lab.sh's names under another prefix
dns_targets="fobgw dnsmasq"
if [[ " $PATHS " != *" fobgw-auto "* ]]; then
	dns_path=stock
	dns_if=wgstock0
	[[ $NSP == fobl ]] || dns_if=${NSP}stk0
	dns_targets=dnsmasq
fi
gw_start "$dns_path" >>"$OUT/lab.log" 2>&1
# dnsmasq on the same gateway, forwarding through the same tunnel, at its best options.
ip netns exec ${NSP}-muc dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
	--bind-interfaces --listen-address=192.168.86.1 --port=5353 --cache-size=10000 \
	--server="192.168.88.1@$dns_if" --user=root --group=root --pid-file="$LAB/dns-muc.pidfile" \
	</dev/null >"$OUT/dnsmasq-muc.log" 2>&1 &
echo $! >"$LAB/dns-muc.pid"
for _ in $(seq 50); do
	ip netns exec ${NSP}-client dig +short +time=1 +tries=1 -p 5353 @192.168.86.1 tv.example >/dev/null 2>&1 && break
	sleep 0.1
done

# Unique names under a wildcard the Pi-hole stand-in answers; a new prefix per file and run.
gen_unique() {
	awk -v n="$1" -v tag="$2" 'BEGIN { srand(); s = int(rand() * 1e9); for (i = 0; i < n; i++) printf "u%x-%s-%d.q.example A\n", s, tag, i }' >"$OUT/$2.queries"
}
echo "c.q.example A" >"$OUT/cached.queries"

# dnsperf_run NAME PORT FILE ARGS...: prints "qps lost"
dnsperf_run() {
	local name=$1 port=$2 file=$3
	shift 3
	timeout $((DNS_SECS + 30)) ip netns exec ${NSP}-client dnsperf -s 192.168.86.1 -p "$port" -d "$file" \
		-l "$DNS_SECS" "$@" >"$OUT/dnsperf-$name.txt" 2>&1 || true
	awk '/Queries per second:/ { q = $4 } /Queries lost:/ { l = $3 } END { print (q == "" ? 0 : q), (l == "" ? "?" : l) }' \
		"$OUT/dnsperf-$name.txt"
}

for r in $(seq "$ROUNDS"); do
	for t in $dns_targets; do
		port=53
		[[ $t == dnsmasq ]] && port=5353
		gen_unique 400000 "$t-r$r"
		read -r q l < <(dnsperf_run "$t-uncached-r$r" "$port" "$OUT/$t-r$r.queries" -c 4 -q 500)
		printf '%s\tuncached\t%s\t%s\t%s\n' "$t" "$r" "$q" "$l" >>"$OUT/dns.tsv"
		read -r q l < <(dnsperf_run "$t-cached-r$r" "$port" "$OUT/cached.queries" -c 4 -q 500)
		printf '%s\tcached\t%s\t%s\t%s\n' "$t" "$r" "$q" "$l" >>"$OUT/dns.tsv"
		gen_unique 30000 "$t-steady-r$r"
		read -r q l < <(dnsperf_run "$t-steady-r$r" "$port" "$OUT/$t-steady-r$r.queries" -c 4 -Q 3000)
		printf '%s\tsteady3000\t%s\t%s\t%s\n' "$t" "$r" "$q" "$l" >>"$OUT/dns.tsv"
		rm -f "$OUT"/*-r"$r".queries
		say "dns round $r $t: $(grep -P "^$t\t" "$OUT/dns.tsv" | awk -F'\t' -v r="$r" '$3 == r { printf "%s %s q/s lost %s; ", $2, $4, $5 }')"
	done
done
fi
dnscol() { # dnscol TARGET KIND FIELD(4 qps, 5 lost)
	awk -v t="$1" -v k="$2" -v f="$3" -F'\t' '$1 == t && $2 == k { print $f }' "$OUT/dns.tsv" | median |
		awk '{ if ($1 == "-") print; else printf "%.0f\n", $1 }'
}
dnslost() { # the most queries lost in any round
	awk -v t="$1" -v k="$2" -F'\t' '$1 == t && $2 == k { if ($5 + 0 > m) m = $5 + 0 } END { print m + 0 }' "$OUT/dns.tsv"
}
read -r load_after _ </proc/loadavg

# --- report ----------------------------------------------------------------------------------
{
	echo "## Lab run $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)," \
		"kernel $(uname -r); load average $load_before before, $load_after after (shared machine)."
	echo "Stock recipe and beg: upstream golang.zx2c4.com/wireguard $(bash "$HERE/../patches/apply.sh" -version) (go.mod's pin; fobgw: the same with patches/wireguard)," \
		"$(iperf3 --version | head -1 | cut -d' ' -f1-2), dnsperf $(dpkg-query -W -f='${Version}' dnsperf 2>/dev/null)."
	echo
	echo "Command: \`ROUNDS=$ROUNDS SECS=$SECS DNS_SECS=$DNS_SECS PATHS=\"$PATHS\" IPERF_ARGS=\"${IPERF_ARGS:-}\" bash bench/throughput.sh\`" \
		"(iperf3 -c 203.0.113.80 -t $SECS [-R] ${IPERF_ARGS:-}from the client; fobgw-off with -M 1380)."
	echo
	echo "### Throughput, medians of $ROUNDS alternated rounds (Mbit/s), peak RSS of the gateway"
	echo
	echo "| path | upload | download | VmHWM after 1 stream each way (KiB) | gateway CPU ms per Gbit, up / down | 8 streams: upload | download | VmHWM after 8 streams each way (KiB) |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for p in $PATHS; do
		echo "| $p | $(col "$p" 3) | $(col "$p" 4) | $(col "$p" 5) | $(col "$p" 6) / $(col "$p" 7) | $(col "$p" 8) | $(col "$p" 9) | $(col "$p" 10) |"
	done
	echo
	echo "VmHWM, most in any round (KiB), after 1 / after 8 streams each way:" \
		"$(for p in $PATHS; do printf '%s %s / %s; ' "$p" "$(colmax "$p" 5)" "$(colmax "$p" 10)"; done)"
	echo
	echo "| ratio | upload | download |"
	echo "| --- | ---: | ---: |"
	ratio_row "fobgw (auto) / stock recipe" fobgw-auto stock 3 4
	ratio_row "8 streams: fobgw (auto) / stock recipe" fobgw-auto stock 8 9
	ratio_row "CPU per Gbit, fobgw (auto) / stock recipe" fobgw-auto stock 6 7
	ratio_row "fobgw (this build) / fobgw (BASE_BIN)" fobgw-auto fobgw-base 3 4
	ratio_row "8 streams: fobgw (this build) / fobgw (BASE_BIN)" fobgw-auto fobgw-base 8 9
	ratio_row "CPU per Gbit, fobgw (this build) / fobgw (BASE_BIN)" fobgw-auto fobgw-base 6 7
	ratio_row "fobgw clamp on / off" fobgw-auto fobgw-off 3 4
	ratio_row "fobgw CPU per Gbit, clamp on / off" fobgw-auto fobgw-off 6 7
	ratio_row "fobgw (GOMEMLIMIT=off) / stock recipe" fobgw-nolimit stock 3 4
	ratio_row "fobgw default / GOMEMLIMIT=off" fobgw-auto fobgw-nolimit 3 4
	ratio_row "stock recipe / plain routing" stock plain 3 4
	echo
	echo "Every round (path, round, up, down, VmHWM KiB, gateway CPU ms per Gbit up, down; 8 streams: up, down, VmHWM KiB):"
	echo
	echo '```'
	cat "$OUT/iperf.tsv"
	echo '```'
	[[ -n ${NO_DNS:-} ]] && exit 0
	echo
	echo "### DNS through the tunnel ($dns_path gateway), medians of $ROUNDS rounds (queries/s)"
	echo
	echo "dnsperf -s 192.168.86.1 -c 4 -q 500 -l $DNS_SECS from the client; uncached = 400,000 unique"
	echo "names under q.example per round; cached = one name; steady = -c 4 -Q 3000 -l $DNS_SECS."
	echo "dnsmasq: --cache-size=10000 --server=192.168.88.1@$dns_if on 192.168.86.1:5353."
	echo
	echo "| forwarder | uncached q/s | lost (most in a round) | cached q/s | lost | steady 3,000 q/s: lost |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: |"
	for t in $dns_targets; do
		echo "| $t | $(dnscol "$t" uncached 4) | $(dnslost "$t" uncached) | $(dnscol "$t" cached 4) | $(dnslost "$t" cached) | $(dnslost "$t" steady3000) |"
	done
	if [[ $dns_path == fobgw-auto ]]; then
		echo
		echo "fobgw / dnsmasq: uncached $(ratio "$(dnscol fobgw uncached 4)" "$(dnscol dnsmasq uncached 4)")," \
			"cached $(ratio "$(dnscol fobgw cached 4)" "$(dnscol dnsmasq cached 4)")."
	fi
} | tee "$OUT/report.md"
