#!/usr/bin/env bash
# demo.sh (`make demo`): fobgw doing its job in the world of the story, in network namespaces.
# Installs the Debian packages it needs when missing, builds fobgw, brings the world up
# (bench/lab.sh), runs the gateway, shows what a person would check, and tears it all down.
# Needs root. Takes well under 2 minutes. Exits non-zero if anything is not as the story needs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export FOBL_NS=${FOBL_NS:-fobl}
NSP=$FOBL_NS
export FOBL_DIR=${FOBL_DIR:-/run/$NSP}
export FOBL_BIN=${FOBL_BIN:-$HERE/out/bin}
PACKAGES=(iproute2 wireguard-tools dnsmasq-base iperf3 nftables iptables tcpdump curl dnsperf bind9-dnsutils procps iputils-ping)

if [[ $(id -u) != 0 ]]; then
	echo "demo: needs root (it builds network namespaces): sudo make demo" >&2
	exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "demo: installing ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

lab() { bash "$HERE/lab.sh" "$@"; }
# quiet CMD...: run CMD, showing its output (and the gateway's log) only if it fails.
quiet() {
	local out
	if ! out=$("$@" 2>&1); then
		printf '%s\n' "$out" >&2
		echo "demo: '$*' failed; the gateway's log:" >&2
		tail -n 20 "$FOBL_DIR/gw.log" >&2 2>/dev/null || true
		exit 1
	fi
}
x() { ip netns exec "${NSP}-$1" "${@:2}"; }
bad=0
check() { # check WHAT GOT WANT
	if [[ $2 == "$3" ]]; then
		printf '   %-58s %s   ok\n' "$1" "$2"
	else
		printf '   %-58s %s   UNEXPECTED (want %s)\n' "$1" "$2" "$3"
		bad=1
	fi
}
finish() {
	# Keep the gateway's log for a person to read, then tear everything down.
	mkdir -p "$HERE/out" && cp "$FOBL_DIR/gw.log" "$HERE/out/demo-gw.log" 2>/dev/null || true
	lab down >/dev/null 2>&1 || true
}
trap finish EXIT
trap 'exit 130' INT TERM

started=$SECONDS
quiet lab build
[[ -x $FOBL_BIN/fobgw ]] || {
	echo "demo: fobgw did not build" >&2
	exit 1
}
quiet lab up
quiet lab gw fobgw auto

cat <<'EOF'

The world of the story, in network namespaces:

  client 192.168.86.254 --- br0 192.168.86.1 [muc: fobgw] wan0 192.168.2.2
     --- 192.168.2.1 [net: the Munich ISP; its DNS says tv.example = 203.0.113.90, the German CDN]
     --- 198.51.100.2 [beg: the home router in Belgrade; its Pi-hole says tv.example = 203.0.113.91]
     --- 203.0.113.80 [web: drops ICMP "fragmentation needed", the PMTUD black hole]

1. Who the internet sees (web's /ip)
EOF
check "the client, through the tunnel (BEG's address)" "$(x client curl -sS --max-time 5 http://203.0.113.80/ip)" 198.51.100.2
check "the gateway itself, direct (the Munich ISP's address)" "$(x muc curl -sS --max-time 5 http://203.0.113.80/ip)" 203.0.113.1

echo
echo "2. DNS from the client (dig @192.168.86.1): answered by the home Pi-hole"
check "tv.example (home CDN; the ISP would say 203.0.113.90)" "$(x client dig +short +time=2 +tries=1 @192.168.86.1 tv.example)" 203.0.113.91
check "tv.example over TCP" "$(x client dig +short +tcp +time=2 +tries=1 @192.168.86.1 tv.example)" 203.0.113.91
check "ads.example (blocked)" "$(x client dig +short +time=2 +tries=1 @192.168.86.1 ads.example)" 0.0.0.0

echo
echo "3. A 256 KiB download from web through the black hole (curl --max-time 5)"
download() { # prints "SIZE TIME"
	x client curl -s --max-time 5 -o /dev/null -w '%{size_download} %{time_total}\n' \
		http://203.0.113.80/big?size=262144 || true
}
shown() { # shown WHAT RESULT VERDICT
	printf '   %-58s %s   %s\n' "$1" "$2" "$3"
}
quiet lab gw fobgw off
read -r size secs < <(download)
if [[ $size == 262144 ]]; then
	shown "ClampMSS = off: hangs as in the story" "completed in ${secs}s" "UNEXPECTED (the black hole is not real)"
	bad=1
else
	shown "ClampMSS = off: hangs as in the story" "$size of 262144 bytes after ${secs}s" ok
fi
quiet lab gw fobgw auto
read -r size secs < <(download)
if [[ $size == 262144 ]]; then
	shown "ClampMSS = auto: completes" "262144 bytes in ${secs}s" ok
else
	shown "ClampMSS = auto: completes" "$size of 262144 bytes after ${secs}s" "UNEXPECTED"
	bad=1
fi

echo
gw_name=$(lab ifname gw) # fobgw0, or named after FOBL_NS
echo "4. wg show $gw_name (at muc)"
x muc wg show "$gw_name" | sed 's/^/   /'

echo
echo "5. The kill switch: kill -9 fobgw, then the client tries web"
pid=$(cat "$FOBL_DIR/gw.pid")
kill -9 "$pid"
for _ in $(seq 50); do
	[[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || echo Z) == Z ]] && break
	sleep 0.1
done
x net nft reset counters table ip fobl-watch >/dev/null
t0=$(date +%s.%N)
if out=$(x client curl -sS --max-time 5 http://203.0.113.80/ip 2>&1); then
	check "client after the crash" "reached web from $out" "nothing"
else
	shown "client after the crash gets nothing" \
		"$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "refused after %.2fs", b - a }')" ok
fi
x client ping -q -c 2 -i 0.2 -W 1 203.0.113.80 >/dev/null 2>&1 && check "client's ping after the crash" answered "no answer"
# nftables counters at the ISP modem on the FOB's WAN link: anything from the LAN, anything to web,
# anything but the tunnel and the gateway's own lookups.
leaked=$(x net nft list table ip fobl-watch | awk '/packets/ { n += $2 } END { print n + 0 }')
check "packets that crossed the WAN link meanwhile" "$leaked" 0

echo
if ((bad)); then
	echo "demo: something is not as the story needs (see UNEXPECTED above); the gateway's log is in bench/out/demo-gw.log" >&2
else
	echo "All as the story needs. Took $((SECONDS - started)) s. Tearing the world down."
fi
exit "$bad"
