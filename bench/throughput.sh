#!/usr/bin/env bash
# throughput.sh: lab benchmarks in the story's world (bench/lab.sh), in one run.
#
#  1. iperf3 client -> web, upload and download (-R), SECS seconds each, ROUNDS rounds alternated
#     over the paths: fobgw (ClampMSS auto), fobgw (ClampMSS off), the stock recipe
#     (wireguard-go of the version go.mod pins + ip rule + iptables TCPMSS), plain routing.
#     Peak RSS (VmHWM) of the gateway process at muc is read after one stream each way, then
#     after 8 streams each way (iperf3 -P 8, same SECS), in every round.
#  2. dnsperf from the client against fobgw's forwarder (192.168.86.1:53) and against dnsmasq on
#     the same gateway forwarding through the same tunnel (192.168.86.1:5353 and up, one instance
#     per --dns-forward-max of DNSMASQ_FWDMAX): uncached (unique names), cached (one name), and a
#     steady 3,000 queries/s. Reported as NOERROR answers per second and the share of failed
#     answers (SERVFAIL + REFUSED + lost), not raw queries per second.
#
# Prints a Markdown report (also kept in $OUT/report.md; raw figures in $OUT).
# Environment: ROUNDS (3), SECS (10), DNS_SECS (6), PATHS (the four above, names:
# fobgw-auto fobgw-off stock plain; without a fobgw binary only stock and plain run; also
# fobgw-nolimit: fobgw-auto with GOMEMLIMIT=off; fobgw-memN: with GOMEMLIMIT=NMiB; fobgw-procsN:
# with GOMAXPROCS=N; fobgw-gogcN: with GOGC=N; fobgw-base: fobgw-auto run from the binary BASE_BIN,
# a build of another commit, for an alternated A/B of two builds),
# IPERF_ARGS (extra iperf3 arguments for every path, e.g. "-M 1380" or "-P 2"), NO_DNS=1 (skip 2.),
# DNS_ROUNDS (ROUNDS), DNSMASQ_FWDMAX ("150 1000 4000": dnsmasq's --dns-forward-max values tried),
# NO_BUILD=1 (use the binaries already in $FOBL_BIN), ORDER=rotate (round r starts with the r-th
# path of PATHS instead of every round with the first).
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
	fobgw-procs*) GOMAXPROCS=${1#fobgw-procs} lab gw fobgw auto ;;   # fobgw-procs1: GOMAXPROCS=1
	fobgw-gogc*) GOGC=${1#fobgw-gogc} lab gw fobgw auto ;;            # fobgw-gogc50: GOGC=50
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
cputicks() { lab gw-cputicks; }

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
read -ra path_list <<<"$PATHS"
for r in $(seq "$ROUNDS"); do
	# ORDER=rotate: round r starts with the r-th path, so that no path always runs first or
	# last in its round (a machine that warms up or tires within a round favours one place).
	round_paths=("${path_list[@]}")
	if [[ ${ORDER:-fixed} == rotate ]]; then
		k=$(((r - 1) % ${#path_list[@]}))
		round_paths=("${path_list[@]:k}" "${path_list[@]:0:k}")
	fi
	for p in "${round_paths[@]}"; do
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
# paired A B FIELD: the median over the rounds of path A's FIELD over path B's in the same round.
# The machine's speed drifts between rounds more than within one, where the paths run minutes
# apart; a ratio of medians takes each path's middle round, which may be a fast and a slow one.
paired() {
	awk -v a="$1" -v b="$2" -v f="$3" -F'\t' '
		$f != "-" && $f != "" { if ($1 == a) va[$2] = $f; else if ($1 == b) vb[$2] = $f }
		END { for (r in va) if ((r in vb) && vb[r] != 0) printf "%.6f\n", va[r] / vb[r] }' "$OUT/iperf.tsv" |
		median | awk '{ if ($1 == "-") print "-"; else printf "%.3f", $1 }'
}
# ratio_row LABEL A B UP DOWN: a table row of path A's medians over path B's (fields UP and DOWN
# of col), then the medians of the rounds' own ratios, when both paths ran.
ratio_row() {
	[[ " $PATHS " == *" $2 "* && " $PATHS " == *" $3 "* ]] || return 0
	echo "| $1 | $(ratio "$(col "$2" "$4")" "$(col "$3" "$4")") | $(ratio "$(col "$2" "$5")" "$(col "$3" "$5")") |" \
		"$(paired "$2" "$3" "$4") | $(paired "$2" "$3" "$5") |"
}

# --- 2. DNS ----------------------------------------------------------------------------------
# Goodput, not raw q/s: past its --dns-forward-max dnsmasq answers REFUSED at once, and raw q/s
# rewards that. Each dnsperf run yields NOERROR answers per second and the share of its queries
# that failed: SERVFAIL + REFUSED + lost (no answer within dnsperf's 5 s). dnsmasq runs once per
# --dns-forward-max of DNSMASQ_FWDMAX, each on its own port, so that its best configuration is the
# one compared.
DNS_ROUNDS=${DNS_ROUNDS:-$ROUNDS}
DNSMASQ_FWDMAX=${DNSMASQ_FWDMAX:-150 1000 4000}
: >"$OUT/dns.tsv"
declare -A dns_port=()
dns_targets=""
if [[ -z ${NO_DNS:-} ]]; then
dns_path=fobgw-auto
dns_if=$(lab ifname gw)
if [[ " $PATHS " == *" fobgw-auto "* ]]; then
	dns_targets=fobgw
	dns_port[fobgw]=53
else
	dns_path=stock
	dns_if=$(lab ifname stock)
fi
gw_start "$dns_path" >>"$OUT/lab.log" 2>&1
# dnsmasq on the same gateway, forwarding through the same tunnel, one instance per forward-max.
port=5353
for fm in $DNSMASQ_FWDMAX; do
	t=dnsmasq-fm$fm
	ip netns exec ${NSP}-muc dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
		--bind-interfaces --listen-address=192.168.86.1 --port=$port --cache-size=10000 \
		--dns-forward-max="$fm" --server="192.168.88.1@$dns_if" --user=root --group=root \
		--pid-file="$LAB/dns-muc-$fm.pidfile" </dev/null >"$OUT/$t.log" 2>&1 &
	echo $! >"$LAB/dns-muc-$fm.pid"
	dns_port[$t]=$port
	dns_targets+=" $t"
	for _ in $(seq 50); do
		ip netns exec ${NSP}-client dig +short +time=1 +tries=1 -p $port @192.168.86.1 tv.example >/dev/null 2>&1 && break
		sleep 0.1
	done
	port=$((port + 1))
done

# Unique names under a wildcard the Pi-hole stand-in answers; a new prefix per file and run.
gen_unique() {
	awk -v n="$1" -v tag="$2" 'BEGIN { srand(); s = int(rand() * 1e9); for (i = 0; i < n; i++) printf "u%x-%s-%d.q.example A\n", s, tag, i }' >"$OUT/$2.queries"
}
echo "c.q.example A" >"$OUT/cached.queries"

# dnsperf_run NAME PORT FILE ARGS...: prints "sent noerror servfail refused lost runtime"
dnsperf_run() {
	local name=$1 port=$2 file=$3
	shift 3
	timeout $((DNS_SECS + 30)) ip netns exec ${NSP}-client dnsperf -s 192.168.86.1 -p "$port" -d "$file" \
		-l "$DNS_SECS" "$@" >"$OUT/dnsperf-$name.txt" 2>&1 || true
	# "Response codes:       NOERROR 35997 (99.99%), SERVFAIL 3 (0.01%)"
	awk '/Queries sent:/ { s = $3 } /Queries lost:/ { l = $3 } /Run time \(s\):/ { t = $4 }
		/Response codes:/ { for (i = 3; i < NF; i += 3) c[$i] = $(i + 1) }
		END { printf "%d %d %d %d %d %s\n", s, c["NOERROR"], c["SERVFAIL"], c["REFUSED"], l, (t == "" ? 0 : t) }' \
		"$OUT/dnsperf-$name.txt"
}

# dns.tsv: target, kind, round, sent, NOERROR, SERVFAIL, REFUSED, lost, run time (s). Targets take
# turns within each kind, in reverse order every other round, so that the shared machine's load
# drifts over all of them alike.
for r in $(seq "$DNS_ROUNDS"); do
	order=$dns_targets
	((r % 2)) || order=$(printf '%s\n' $dns_targets | tac | xargs)
	for kind in uncached cached steady3000; do
		for t in $order; do
			case $kind in
			uncached)
				gen_unique 400000 "$t-r$r"
				file=$OUT/$t-r$r.queries args=(-c 4 -q 500)
				;;
			cached) file=$OUT/cached.queries args=(-c 4 -q 500) ;;
			steady3000)
				gen_unique 30000 "$t-steady-r$r"
				file=$OUT/$t-steady-r$r.queries args=(-c 4 -Q 3000)
				;;
			esac
			read -r a < <(dnsperf_run "$t-$kind-r$r" "${dns_port[$t]}" "$file" "${args[@]}")
			printf '%s\t%s\t%s\t%s\n' "$t" "$kind" "$r" "${a// /$'\t'}" >>"$OUT/dns.tsv"
			[[ $kind == cached ]] || rm -f "$file"
		done
	done
	for t in $dns_targets; do
		say "dns round $r $t: $(awk -F'\t' -v t="$t" -v r="$r" '$1 == t && $3 == r && $9 > 0 {
			printf "%s %.0f NOERROR/s, failed %d of %d; ", $2, $5 / $9, $6 + $7 + $8, $4 }' "$OUT/dns.tsv")"
	done
done
# fobgw's own counters after every DNS run (its metrics, if the lab's config serves them).
if [[ " $dns_targets " == *" fobgw "* ]]; then
	metrics=$(grep -m1 -o 'MetricsListen = [^ ]*' "$LAB/fobgw.conf" 2>/dev/null | cut -d' ' -f3) || true
	ip netns exec ${NSP}-muc curl -s --max-time 3 "http://${metrics:-127.0.0.1:9586}/metrics" 2>/dev/null |
		grep '^fobgw_dns_' >"$OUT/fobgw-dns-metrics.txt" || true
fi
fi
# dns_goodput TARGET KIND: the median over rounds of NOERROR answers per second.
dns_goodput() {
	awk -v t="$1" -v k="$2" -F'\t' '$1 == t && $2 == k && $9 > 0 { print $5 / $9 }' "$OUT/dns.tsv" | median |
		awk '{ if ($1 == "-") print; else printf "%.0f\n", $1 }'
}
# dns_failed TARGET KIND: failed queries (SERVFAIL + REFUSED + lost) over all rounds, as a share of
# those sent, and the counts: "0.012 % (3 of 25000: 3 SERVFAIL, 0 REFUSED, 0 lost)".
dns_failed() {
	awk -v t="$1" -v k="$2" -F'\t' '$1 == t && $2 == k { s += $4; f += $6; r += $7; l += $8 }
		END { if (s == 0) print "-"; else printf "%.3f %% (%d of %d: %d SERVFAIL, %d REFUSED, %d lost)\n", 100 * (f + r + l) / s, f + r + l, s, f, r, l }' "$OUT/dns.tsv"
}
# dns_best KIND: the dnsmasq configuration with the highest goodput of KIND.
dns_best() {
	local t best=- bv=-1 v
	for t in $dns_targets; do
		[[ $t == dnsmasq-* ]] || continue
		v=$(dns_goodput "$t" "$1")
		[[ $v != - ]] && ((v > bv)) && best=$t bv=$v
	done
	echo "$best"
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
	echo "Command: \`ROUNDS=$ROUNDS SECS=$SECS DNS_SECS=$DNS_SECS PATHS=\"$PATHS\" ORDER=${ORDER:-fixed} IPERF_ARGS=\"${IPERF_ARGS:-}\" bash bench/throughput.sh\`" \
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
	echo "| ratio (of the medians; then the median of each round's own) | upload | download | upload, per round | download, per round |"
	echo "| --- | ---: | ---: | ---: | ---: |"
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
	echo "### DNS through the tunnel ($dns_path gateway), $DNS_ROUNDS rounds"
	echo
	echo "dnsperf -s 192.168.86.1 -l $DNS_SECS from the client. uncached: -c 4 -q 500, 400,000 unique names under"
	echo "q.example per round (the Pi-hole stand-in at home answers them); cached: -c 4 -q 500, one name;"
	echo "steady: -c 4 -Q 3000, unique names. NOERROR/s: NOERROR answers per second (median of the rounds);"
	echo "failed: SERVFAIL + REFUSED + lost (no answer within 5 s), summed over the rounds, share of the queries sent."
	echo "dnsmasq: --cache-size=10000 --server=192.168.88.1@$dns_if --dns-forward-max=N on 192.168.86.1."
	echo
	echo "| forwarder | uncached NOERROR/s | uncached failed | cached NOERROR/s | cached failed | steady 3,000 q/s: NOERROR/s | steady: failed |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	for t in $dns_targets; do
		echo "| $t | $(dns_goodput "$t" uncached) | $(dns_failed "$t" uncached) | $(dns_goodput "$t" cached) |" \
			"$(dns_failed "$t" cached) | $(dns_goodput "$t" steady3000) | $(dns_failed "$t" steady3000) |"
	done
	if [[ " $dns_targets " == *" fobgw "* ]]; then
		bu=$(dns_best uncached) bc=$(dns_best cached)
		echo
		echo "fobgw / dnsmasq's best: uncached $(ratio "$(dns_goodput fobgw uncached)" "$(dns_goodput "$bu" uncached)") ($bu)," \
			"cached $(ratio "$(dns_goodput fobgw cached)" "$(dns_goodput "$bc" cached)") ($bc)."
	fi
	if [[ -s $OUT/fobgw-dns-metrics.txt ]]; then
		echo
		echo "fobgw's counters after all DNS runs: $(awk '
			/^fobgw_dns_upstream_retransmits_total / { rt = $2 } /event="timeout"/ { to = $2 }
			/event="mismatched"/ { mm = $2 } /^fobgw_dns_refused_full_total / { rf = $2 }
			END { printf "%d retransmissions, %d upstream timeouts, %d late or mismatched answers dropped, %d REFUSED (table full)", rt, to, mm, rf }' \
			"$OUT/fobgw-dns-metrics.txt")."
	fi
	echo
	echo "Every run (target, kind, round, sent, NOERROR, SERVFAIL, REFUSED, lost, run time s):"
	echo
	echo '```'
	cat "$OUT/dns.tsv"
	echo '```'
} | tee "$OUT/report.md"
