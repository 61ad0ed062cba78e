#!/usr/bin/env bash
# lab.sh: the world of the story (docs/design.md, "The world of the story") in network namespaces.
#
#   client 192.168.86.254 --- br0 192.168.86.1 [muc: gateway] wan0 192.168.2.2
#      --- 192.168.2.1 [net: MUC ISP modem + internet router, ISP DNS]
#      --- 198.51.100.2 [beg: stock wireguard-go 10.1.200.1, Pi-hole 192.168.88.1]
#      --- 203.0.113.80 [web: HTTP, iperf3, ICMP "fragmentation needed" dropped]
#
# Usage: bench/lab.sh COMMAND [ARGS]
#   build                 build fobgw, upstream wireguard-go (the version go.mod pins) and labweb into $FOBL_BIN
#   up                    remove leftovers of an earlier lab, then bring the world up (no gateway yet)
#   gw MODE [CLAMP]       stop the gateway at muc, clean up after it, run MODE:
#                         fobgw [auto|off|N] | fobgw-unit [CLAMP] | stock [off] | plain | none
#                         (fobgw-unit: fobgw sandboxed as dist/fobgw.service runs it: a uid of
#                         its own, two capabilities, the unit's system call filter)
#   gw-over MODE [CLAMP]  start MODE over what is there (e.g. a crashed gateway's leftovers)
#   down                  stop every process of the lab, delete its namespaces and files
#   x NS CMD...           run CMD in namespace $FOBL_NS-NS (client, muc, net, beg, web)
#   ddns-move ADDR        move beg's WAN address to ADDR and make the ISP's DNS record follow
#   path-mtu MTU          set the ISP-to-home link (net beg0 <-> beg wan0) to MTU (1280-1500), with
#                         ICMP "fragmentation needed" dropped at net: the tunnel's own black hole
#   status                namespaces, gateway mode, `wg show` at both ends
#   gw-cputicks           the gateway process's user+system CPU time so far, in clock ticks
#                         (getconf CLK_TCK a second); "-" without a gateway
#   ifname gw|stock|beg   print the WireGuard interface's name (fobgw's, the stock recipe's, home's)
#                         under this FOBL_NS
#   beg-allowed PREFIXES  set the AllowedIPs of the FOB's peer at beg (e.g. 10.1.200.2/32, as
#                         the home router of the story; the lab starts with
#                         10.1.200.2/32,192.168.86.0/24)
#   block-udp PORT...     the ISP (net) drops UDP between the FOB and these ports, both ways
#                         (replaces the list)
#   unblock-udp           the ISP drops nothing again
#   beg-port PORT...      beg answers WireGuard on these UDP ports too (a redirect to 13231, as a
#                         home router's port forward); no PORT: only 13231 again
#   portal-on [redirect]  the ISP (net) puts a captive portal (labportal) in front of the FOB's WAN
#                         address: its HTTP (TCP 80) gets the login page (redirect: a 302 to
#                         http://portal.example/ first), everything else net would forward from it
#                         is dropped, UDP home included, until the page's form is sent; lookups at
#                         the ISP resolver keep working
#   portal-off            no portal: nothing intercepted or dropped
#   drift                 print what differs from the world `up` made (one line each; nothing: none)
#   reset                 put back what drift finds, the gateway aside (bench's tests restart it)
#   beg-stop              stop beg's WireGuard (the home router goes down: power cut, reboot);
#                         prints "beg down at EPOCH" (seconds) as it stops it
#   beg-start             start it again as a rebooted home router: the same key and port, the FOB's
#                         peer with the AllowedIPs it had but no endpoint, no session; prints
#                         "beg back at EPOCH" (seconds) once its interface is up and configured;
#                         nothing when it runs
#   beg-restart           beg-stop, then beg-start
#   lan-device NAME ADDR [MAC]  another LAN device: namespace $FOBL_NS-NAME on muc's br0 with
#                         ADDR/24 (and MAC), default route via the gateway; again: made anew
#   lan-device-addr NAME ADDR   the device takes another address (a new DHCP lease)
#   lan-device-del NAME   remove the device
#   cdn on|off            web also serves HTTP at 203.0.113.90 and .91 (tv.example as the local
#                         ISP's resolver and the home Pi-hole answer it)
#
# Environment: FOBL_NS (prefix of the lab's namespace names; default fobl, so fobl-client...;
#              two labs with different prefixes and FOBL_DIRs can run side by side),
#              FOBL_DIR (lab state, keys, logs; default /run/$FOBL_NS, made 0700 per run),
#              FOBL_BIN (binaries; default bench/out/bin),
#              FOBL_GW_CGROUP (a cgroup directory that `gw fobgw` starts fobgw in, e.g. under a
#              memory limit).
#              For `gw fobgw`: FOBL_ENDPOINTS (the Endpoint line's value; default
#              home.example:13231), FOBL_GW_EXTRA (lines appended to [Gateway], e.g.
#              "Masquerade = on"), FOBL_GW_WAIT (what gw waits for: client, the default, the
#              client through to web; tunnel, a handshake and the LAN's table; none).
# Nothing here touches the machine's own network namespace: every link is a veth pair
# created directly inside two lab namespaces, every address and rule lives in a lab namespace.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
NSP=${FOBL_NS:-fobl}
[[ $NSP =~ ^[a-z][a-z0-9]{0,7}$ ]] || {
	echo "lab: error: FOBL_NS=$NSP: want a short lowercase name like fobl" >&2
	exit 1
}
LAB=${FOBL_DIR:-/run/$NSP}
BIN=${FOBL_BIN:-$HERE/out/bin}
NSS=(client muc net beg web)
# down removes $LAB whole: refuse anything that is not a directory of its own.
[[ $LAB =~ ^/[^/]+/.+ && $LAB != *..* ]] || {
	echo "lab: error: FOBL_DIR=$LAB: want a directory of the lab's own, like /run/fobl" >&2
	exit 1
}

GW_NAME=fobgw0     # fobgw's interface (the default Name)
STOCK_NAME=wgstock0 # the stock recipe's interface at muc
BEG_NAME=begwg0    # the home router's interface
# UAPI sockets live in the machine's /var/run/wireguard, shared by every lab: a lab with its own
# prefix names its WireGuard interfaces after it (bench/helpers_test.go's wgName does the same).
if [[ $NSP != fobl ]]; then
	GW_NAME=${NSP}gw0 STOCK_NAME=${NSP}stk0 BEG_NAME=${NSP}beg0
fi
TABLE=100
UNIT_UID=${FOBL_UNIT_UID:-64086} # fobgw-unit's uid and gid (no passwd entry needed)
BEG_ADDR_FILE=$LAB/beg.addr

exec 3>&2 # die's messages get through wait_for's silencing
log() { printf 'lab: %s\n' "$*" >&2; }
die() {
	printf 'lab: error: %s\n' "$*" >&3
	exit 1
}

# nsx NS CMD...: run CMD inside namespace $NSP-NS (never in the machine's own).
nsx() {
	local ns=$1
	shift
	ip netns exec "${NSP}-$ns" "$@"
}

# wait_for DESC SECONDS CMD...: poll CMD every 0.1 s until it succeeds or the deadline passes.
wait_for() {
	local desc=$1 secs=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			die "timed out after ${secs}s waiting for $desc"
		fi
		sleep 0.1
	done
}

# start NAME NS CMD...: start CMD in the background in namespace NS, log to $LAB/NAME.log,
# pid to $LAB/NAME.pid. `ip netns exec` execs, so the pid is the program's own.
start() {
	local name=$1 ns=$2
	shift 2
	ip netns exec "${NSP}-$ns" "$@" </dev/null >>"$LAB/$name.log" 2>&1 3>&- &
	echo $! >"$LAB/$name.pid"
}

# stop_pid FILE: end the process whose pid FILE holds (TERM, then KILL after 5 s).
stop_pid() {
	local f=$1 pid
	[[ -f $f ]] || return 0
	pid=$(cat "$f")
	rm -f "$f"
	[[ -n $pid ]] || return 0
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
}

need_root() {
	[[ $(id -u) == 0 ]] || die "the lab needs root (network namespaces); run it with sudo"
	for t in ip wg nft iptables dnsmasq iperf3 curl dig; do
		command -v "$t" >/dev/null || die "$t is missing; install the Debian packages: make deps"
	done
}

cmd_build() {
	mkdir -p "$BIN"
	cd "$ROOT"
	# The stock wireguard-go (beg, and the stock recipe at muc) stays upstream: built from the
	# version go.mod pins, never through go.mod's replace (fobgw's patched copy).
	local ver tmp
	ver=$(bash patches/apply.sh -version)
	log "building upstream wireguard-go $ver and labweb into $BIN"
	tmp=$(mktemp -d)
	GOBIN=$tmp go install "golang.zx2c4.com/wireguard@$ver"
	mv "$tmp/wireguard" "$BIN/wireguard-go"
	rmdir "$tmp"
	go build -o "$BIN/labportal" ./bench/cmd/labportal
	go build -o "$BIN/labweb" ./bench/cmd/labweb
	go build -o "$BIN/syscallfilter" ./bench/cmd/syscallfilter
	if [[ -d cmd/fobgw ]]; then
		log "building fobgw (wireguard-go $ver with patches/wireguard)"
		bash patches/apply.sh
		CGO_ENABLED=0 go build -o "$BIN/fobgw" ./cmd/fobgw
	else
		log "cmd/fobgw does not exist yet: only the stock recipe and plain routing can run"
	fi
}

cmd_down() {
	local ns pids
	# Processes first, by the pid files of this lab, then whatever still lives in a lab namespace
	# (leftovers of a crashed run whose pid files are gone).
	if [[ -d $LAB ]]; then
		for f in "$LAB"/*.pid; do
			[[ -e $f ]] && stop_pid "$f"
		done
	fi
	for ns in $(ip netns list | awk '{print $1}' | grep "^${NSP}-" || true); do
		pids=$(ip netns pids "$ns" 2>/dev/null || true)
		if [[ -n $pids ]]; then
			# shellcheck disable=SC2086
			kill -9 $pids 2>/dev/null || true
		fi
	done
	for ns in $(ip netns list | awk '{print $1}' | grep "^${NSP}-" || true); do
		ip netns del "$ns" 2>/dev/null || log "could not delete namespace $ns"
	done
	# UAPI sockets are in the shared /var/run/wireguard: remove ours when no process owns them.
	for n in $GW_NAME $STOCK_NAME $BEG_NAME; do
		if [[ -S /var/run/wireguard/$n.sock ]] && ! wg show "$n" >/dev/null 2>&1; then
			rm -f "/var/run/wireguard/$n.sock"
		fi
	done
	rm -rf "$LAB"
}

# veth NS1 IF1 NS2 IF2: a veth pair created directly in the two lab namespaces.
veth() {
	ip -n "${NSP}-$1" link add "$2" type veth peer name "$4" netns "${NSP}-$3"
	ip -n "${NSP}-$1" link set "$2" up
	ip -n "${NSP}-$3" link set "$4" up
}

cmd_up() {
	need_root
	for b in wireguard-go labweb; do
		[[ -x $BIN/$b ]] || die "$BIN/$b is missing; run: bash bench/lab.sh build"
	done
	cmd_down
	trap '[[ -n ${up_done:-} ]] || { log "bringing the world up failed; tearing it down"; cmd_down; }' EXIT
	mkdir -m 0700 -p "$LAB"
	umask 077

	for ns in "${NSS[@]}"; do
		ip netns add "${NSP}-$ns"
		ip -n "${NSP}-$ns" link set lo up
	done

	# Keys of this run (0600 in a 0700 directory).
	wg genkey >"$LAB/fob.key"
	wg pubkey <"$LAB/fob.key" >"$LAB/fob.pub"
	wg genkey >"$LAB/beg.key"
	wg pubkey <"$LAB/beg.key" >"$LAB/beg.pub"

	# Links (MTU 1500 everywhere).
	veth client eth0 muc lan0
	veth muc wan0 net muc0
	veth net beg0 beg wan0
	veth net web0 web eth0

	# client
	ip -n ${NSP}-client addr add 192.168.86.254/24 dev eth0
	ip -n ${NSP}-client route add default via 192.168.86.1

	# muc: a stock home router (bridge LAN, masquerade on WAN); the gateway runs here.
	# A MAC of its own: a bridge otherwise takes its lowest port's, and changes it when LAN devices
	# come and go (lan-device), which leaves the others' ARP caches pointing nowhere for 30 s.
	ip -n ${NSP}-muc link add br0 address 02:fb:00:00:86:01 type bridge
	ip -n ${NSP}-muc link set lan0 master br0
	ip -n ${NSP}-muc link set br0 up
	ip -n ${NSP}-muc addr add 192.168.86.1/24 dev br0
	ip -n ${NSP}-muc addr add 192.168.2.2/24 dev wan0
	ip -n ${NSP}-muc route add default via 192.168.2.1
	nsx muc sysctl -qw net.ipv4.ip_forward=1
	muc_nat

	# net: the MUC ISP modem (masquerades the FOB's WAN) and the internet router.
	ip -n ${NSP}-net addr add 192.168.2.1/24 dev muc0
	ip -n ${NSP}-net addr add 198.51.100.1/24 dev beg0
	ip -n ${NSP}-net addr add 203.0.113.1/24 dev web0
	nsx net sysctl -qw net.ipv4.ip_forward=1
	# Counters on the WAN link of the FOB, from muc's side: anything from the LAN, anything to web,
	# and anything but the tunnel (UDP from port 13231) and lookups at the ISP resolver.
	nsx net nft -f - <<-'EOF'
		table ip fobl-nat {
			chain post { type nat hook postrouting priority srcnat; ip saddr 192.168.2.0/24 oifname != "muc0" masquerade; }
		}
		table ip fobl-watch {
			counter lan_src {}
			counter to_web {}
			counter other {}
			chain pre {
				type filter hook prerouting priority raw; policy accept;
				iifname "muc0" ip saddr 192.168.86.0/24 counter name lan_src
				iifname "muc0" ip daddr 203.0.113.80 counter name to_web
				iifname "muc0" udp sport 13231 accept
				iifname "muc0" ip daddr 192.168.2.1 udp dport 53 accept
				iifname "muc0" ip daddr 192.168.2.1 tcp dport 53 accept
				iifname "muc0" counter name other
			}
		}
	EOF
	echo 198.51.100.2 >"$BEG_ADDR_FILE"
	write_isp_hosts 198.51.100.2
	start dns-isp net dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
		--bind-interfaces --listen-address=192.168.2.1 --addn-hosts="$LAB/isp.hosts" \
		--local-ttl=1 --user=root --group=root --pid-file="$LAB/dns-isp.pidfile" \
		--log-facility="$LAB/dns-isp.query.log"

	# beg: the home router: stock wireguard-go, masquerade, the Pi-hole stand-in on the home LAN.
	ip -n ${NSP}-beg addr add 198.51.100.2/24 dev wan0
	ip -n ${NSP}-beg route add default via 198.51.100.1
	# The home LAN: a veth pair inside beg (this kernel may lack the dummy driver).
	ip -n ${NSP}-beg link add home0 type veth peer name homelan
	ip -n ${NSP}-beg addr add 192.168.88.1/24 dev home0
	ip -n ${NSP}-beg link set homelan up
	ip -n ${NSP}-beg link set home0 up
	nsx beg sysctl -qw net.ipv4.ip_forward=1
	nsx beg nft -f - <<-'EOF'
		table ip fobl-nat {
			chain post { type nat hook postrouting priority srcnat; oifname "wan0" masquerade; }
		}
	EOF
	start beg-wg beg env WG_PROCESS_FOREGROUND=1 "$BIN/wireguard-go" "$BEG_NAME"
	wait_for "$BEG_NAME's UAPI socket" 10 nsx beg wg show "$BEG_NAME"
	nsx beg wg set "$BEG_NAME" private-key "$LAB/beg.key" listen-port 13231 \
		peer "$(cat "$LAB/fob.pub")" allowed-ips 10.1.200.2/32,192.168.86.0/24
	ip -n ${NSP}-beg addr add 10.1.200.1/24 dev "$BEG_NAME"
	ip -n ${NSP}-beg link set "$BEG_NAME" mtu 1420 up
	ip -n ${NSP}-beg route add 192.168.86.0/24 dev "$BEG_NAME"
	start dns-pihole beg dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
		--bind-interfaces --listen-address=192.168.88.1 --local-ttl=300 --cache-size=10000 \
		--address=/tv.example/203.0.113.91 --address=/ads.example/0.0.0.0 \
		--address=/q.example/203.0.113.99 --address=/#/ \
		--user=root --group=root --pid-file="$LAB/dns-pihole.pidfile"

	# web: HTTP and iperf3; ICMP "fragmentation needed" dropped: the PMTUD black hole.
	ip -n ${NSP}-web addr add 203.0.113.80/24 dev eth0
	ip -n ${NSP}-web route add default via 203.0.113.1
	nsx web nft -f - <<-'EOF'
		table ip fobl-blackhole {
			counter frag_needed {}
			chain input {
				type filter hook input priority filter; policy accept;
				icmp type destination-unreachable icmp code frag-needed counter name frag_needed drop
			}
		}
	EOF
	start web web "$BIN/labweb" -listen 203.0.113.80:80
	start iperf3 web iperf3 -s -B 203.0.113.80

	wait_for "the ISP resolver" 10 nsx muc dig +short +time=1 +tries=1 @192.168.2.1 home.example
	wait_for "the Pi-hole stand-in" 10 nsx beg dig +short +time=1 +tries=1 @192.168.88.1 tv.example
	wait_for "the web server" 10 nsx net curl -fsS --max-time 1 http://203.0.113.80/ip
	wait_for "iperf3" 10 sh -c "ip netns exec ${NSP}-web ss -Hltn 'sport = :5201' | grep -q 5201"
	echo none >"$LAB/gw.mode"
	nsx muc sysctl -n net.ipv4.conf.all.rp_filter >"$LAB/rp_filter.up"
	up_done=1
	log "world is up (state in $LAB)"
}

write_isp_hosts() {
	# Also the name of fobgw's default portal check (answered by labweb) and the portal's own.
	printf '%s home.example\n203.0.113.90 tv.example\n203.0.113.80 connectivitycheck.gstatic.com\n192.168.2.1 portal.example\n' \
		"$1" >"$LAB/isp.hosts.new"
	mv "$LAB/isp.hosts.new" "$LAB/isp.hosts"
}

# fobgw_conf CLAMP: the gateway's configuration for this lab, on stdout.
fobgw_conf() {
	cat <<-EOF
		[Interface]
		Name = $GW_NAME
		PrivateKeyFile = $LAB/fob.key
		ListenPort = 13231
		Address = 10.1.200.2/24
		MTU = 1420

		[Peer]
		PublicKey = $(cat "$LAB/beg.pub")
		Endpoint = ${FOBL_ENDPOINTS:-home.example:13231}
		AllowedIPs = 0.0.0.0/0
		PersistentKeepalive = 25

		[Gateway]
		LAN = 192.168.86.0/24
		LANInterface = br0
		Table = $TABLE
		HomeNetworks = 192.168.88.0/24
		DNSListen = 192.168.86.1:53
		DNSUpstream = 192.168.88.1
		Resolver = 192.168.2.1
		ClampMSS = $1
		KillSwitch = on
		MetricsListen = 127.0.0.1:9636
	EOF
	# More [Gateway] lines from the caller (the section is the last one).
	if [[ -n ${FOBL_GW_EXTRA:-} ]]; then
		printf '%s\n' "$FOBL_GW_EXTRA"
	fi
}

# gw_stop: stop whatever gateway runs at muc and remove every rule and route it left.
gw_stop() {
	local mode
	mode=$(cat "$LAB/gw.mode" 2>/dev/null || echo none)
	stop_pid "$LAB/gw.pid"
	if [[ $mode == fobgw* && -f $LAB/fobgw.conf ]]; then
		nsx muc "$BIN/fobgw" down -config "$LAB/fobgw.conf" >>"$LAB/gw.log" 2>&1 ||
			log "fobgw down failed; see $LAB/gw.log (cleaning up by hand)"
	fi
	while ip -n ${NSP}-muc rule del lookup "$TABLE" 2>/dev/null; do :; done
	ip -n ${NSP}-muc route flush table "$TABLE" 2>/dev/null || true
	ip -n ${NSP}-muc route del 192.168.88.0/24 2>/dev/null || true
	nsx muc iptables -t mangle -F FORWARD 2>/dev/null || true
	ip -n ${NSP}-muc link del "$STOCK_NAME" 2>/dev/null || true
	echo none >"$LAB/gw.mode"
}

cmd_gw() {
	[[ -d $LAB ]] || die "no lab is up; run: bash bench/lab.sh up"
	gw_stop
	gw_start "$@"
}

# gw_start MODE [CLAMP]: start a gateway at muc over whatever is there (a crashed run's leftovers
# included), then wait until the client reaches web through it (FOBL_GW_WAIT: less).
gw_start() {
	local mode=${1:-} clamp=${2:-auto} until=${FOBL_GW_WAIT:-client}
	[[ -d $LAB ]] || die "no lab is up; run: bash bench/lab.sh up"
	[[ $until =~ ^(client|tunnel|none)$ ]] || die "FOBL_GW_WAIT=$until: want client, tunnel or none"
	case $mode in
	none) return 0 ;;
	plain)
		# No tunnel: muc routes the LAN out of wan0 (main table, masquerade): the speed of light.
		;;
	stock)
		# The recipe a Linux user sets up by hand: wireguard-go, wg, ip rule, an iptables TCPMSS
		# rule both ways (CLAMP off leaves the TCPMSS rules out).
		local endpoint
		endpoint=$(nsx muc dig +short +time=1 +tries=2 @192.168.2.1 home.example | head -1)
		[[ -n $endpoint ]] || die "the ISP resolver does not know home.example"
		start gw muc env WG_PROCESS_FOREGROUND=1 "$BIN/wireguard-go" "$STOCK_NAME"
		wait_for "$STOCK_NAME's UAPI socket" 10 nsx muc wg show "$STOCK_NAME"
		nsx muc wg set "$STOCK_NAME" private-key "$LAB/fob.key" listen-port 13231 \
			peer "$(cat "$LAB/beg.pub")" endpoint "$endpoint:13231" allowed-ips 0.0.0.0/0 \
			persistent-keepalive 25
		ip -n ${NSP}-muc addr add 10.1.200.2/24 dev "$STOCK_NAME"
		ip -n ${NSP}-muc link set "$STOCK_NAME" mtu 1420 up
		ip -n ${NSP}-muc rule add from 192.168.86.0/24 iif br0 lookup "$TABLE"
		ip -n ${NSP}-muc route add default dev "$STOCK_NAME" table "$TABLE"
		ip -n ${NSP}-muc route add 192.168.88.0/24 dev "$STOCK_NAME"
		if [[ $clamp != off ]]; then
			nsx muc iptables -t mangle -A FORWARD -o "$STOCK_NAME" -p tcp --tcp-flags SYN,RST SYN \
				-j TCPMSS --clamp-mss-to-pmtu
			nsx muc iptables -t mangle -A FORWARD -i "$STOCK_NAME" -p tcp --tcp-flags SYN,RST SYN \
				-j TCPMSS --clamp-mss-to-pmtu
		fi
		;;
	fobgw)
		[[ -x $BIN/fobgw ]] || die "$BIN/fobgw is missing; run: bash bench/lab.sh build"
		fobgw_conf "$clamp" >"$LAB/fobgw.conf"
		if [[ -n ${FOBL_GW_CGROUP:-} ]]; then
			# Into the cgroup before exec, so that every byte fobgw uses is charged there; before
			# `ip netns exec` too, which mounts a sysfs without the cgroup file systems.
			[[ -w $FOBL_GW_CGROUP/cgroup.procs ]] || die "FOBL_GW_CGROUP=$FOBL_GW_CGROUP is no cgroup directory"
			# shellcheck disable=SC2016
			sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$FOBL_GW_CGROUP" \
				ip netns exec "${NSP}-muc" "$BIN/fobgw" run -config "$LAB/fobgw.conf" \
				</dev/null >>"$LAB/gw.log" 2>&1 3>&- &
			echo $! >"$LAB/gw.pid"
		else
			start gw muc "$BIN/fobgw" run -config "$LAB/fobgw.conf"
		fi
		;;
	fobgw-unit)
		unit_start "$clamp"
		;;
	*) die "unknown gateway mode '$mode': use fobgw [auto|off|N], fobgw-unit [CLAMP], stock [off], plain or none" ;;
	esac
	echo "$mode" >"$LAB/gw.mode"
	[[ $until != none ]] || return 0
	if [[ $mode != plain ]]; then
		local ifn=$GW_NAME
		[[ $mode == stock ]] && ifn=$STOCK_NAME
		wait_for "a handshake on $ifn (log: $LAB/gw.log)" 30 handshake_done "$ifn"
		# Poll the client only once the LAN's table leads into the tunnel: every refused try costs
		# an ICMP unreachable from the kernel's per-host budget (about 1/s after a burst), and
		# the tests want that budget whole to see the kill switch refuse at once.
		wait_for "table $TABLE to lead into $ifn" 30 \
			sh -c "ip -n ${NSP}-muc route show table $TABLE | grep -q 'dev $ifn'"
	fi
	[[ $until == client ]] || return 0
	wait_for "the client to reach web through $mode (log: $LAB/gw.log)" 30 \
		nsx client curl -fsS --max-time 1 -o /dev/null http://203.0.113.80/ip
	log "gateway $mode is up"
}

# handshake_done IFACE: the interface at muc has a handshake with beg; gives up at once if the
# gateway process has died.
handshake_done() {
	local hs pid
	pid=$(cat "$LAB/gw.pid" 2>/dev/null || true)
	if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
		die "the gateway exited; its log ($LAB/gw.log) ends with:
$(tail -n 15 "$LAB/gw.log")"
	fi
	hs=$(gwx wg show "$1" latest-handshakes 2>/dev/null | awk '{print $2}' | head -1)
	[[ -n $hs && $hs != 0 ]]
}

# gwx CMD...: run CMD at muc where the gateway's sockets are: in fobgw-unit mode, inside the
# gateway's own mount namespace (its /run).
gwx() {
	if [[ $(cat "$LAB/gw.mode" 2>/dev/null) == fobgw-unit ]]; then
		nsenter -t "$(cat "$LAB/gw.pid")" -m -n "$@"
	else
		nsx muc "$@"
	fi
}

# unit_start CLAMP: fobgw as dist/fobgw.service runs it, without systemd: uid $UNIT_UID with only
# CAP_NET_ADMIN and CAP_NET_BIND_SERVICE (ambient, bounding), no_new_privs and the unit's
# SystemCallFilter= (bench/cmd/syscallfilter), UMask 0077, and in a mount namespace of its own
# what systemd would set up: a /run with the runtime directories /run/fobgw and /run/wireguard
# and the configuration as a credential, /var/lib/fobgw (the state directory, holding the key),
# a private /tmp, /proc with hidepid=invisible, and /dev/net/tun 0666. The host's ip_forward at muc is 0 first, so
# that fobgw must write the sysctl itself.
unit_start() {
	local u=$LAB/unit
	for t in setpriv nsenter systemd-analyze scmp_sys_resolver; do
		command -v "$t" >/dev/null || die "$t is missing; install the Debian packages: make deps"
	done
	[[ -x $BIN/syscallfilter ]] || die "$BIN/syscallfilter is missing; run: bash bench/lab.sh build"
	fobgw_conf "$1" >"$LAB/fobgw.conf"
	rm -rf "$u"
	mkdir -m 0700 -p "$u/state" "$u/run"
	sed 's|^PrivateKeyFile = .*|PrivateKeyFile = /var/lib/fobgw/private.key|' "$LAB/fobgw.conf" >"$u/fobgw.conf"
	install -m 0600 "$LAB/fob.key" "$u/state/private.key"
	chown -R "$UNIT_UID:$UNIT_UID" "$u/state"
	nsx muc sysctl -qw net.ipv4.ip_forward=0
	# shellcheck disable=SC2016
	start gw muc sh -ec '
		u=$1 bin=$2 unit=$3 id=$4
		mount -n -t tmpfs -o mode=0755 fobgw-run "$u/run"
		mkdir -m 0700 "$u/run/fobgw" "$u/run/wireguard"
		mkdir -m 0755 "$u/run/bin"
		mkdir -p -m 0500 "$u/run/credentials/fobgw.service"
		install -m 0400 -o "$id" -g "$id" "$u/fobgw.conf" "$u/run/credentials/fobgw.service/fobgw.conf"
		chown "$id:$id" "$u/run/fobgw" "$u/run/wireguard" "$u/run/credentials/fobgw.service"
		install -m 0755 "$bin/fobgw" "$bin/syscallfilter" "$u/run/bin/"
		install -m 0644 "$unit" "$u/run/bin/fobgw.service"
		mount -n -t tmpfs -o mode=0755 fobgw-varlib /var/lib
		mkdir -m 0700 /var/lib/fobgw
		mount -n --bind "$u/state" /var/lib/fobgw
		mount -n --move "$u/run" /run
		mount -n -t tmpfs -o mode=1777 fobgw-tmp /tmp
		# /dev/net/tun as Debian'"'"'s udev makes it (0666: opening it needs no privilege, creating
		# a TUN needs CAP_NET_ADMIN), also where a machine without udev has it 0600.
		mount -n -t tmpfs -o mode=0755 fobgw-devnet /dev/net
		mknod -m 0666 /dev/net/tun c 10 200
		mount -n -t proc -o hidepid=invisible proc /proc
		umask 077
		exec setpriv --reuid="$id" --regid="$id" --clear-groups 			--inh-caps=-all,+net_admin,+net_bind_service --ambient-caps=-all,+net_admin,+net_bind_service 			--bounding-set=-all,+net_admin,+net_bind_service 			/run/bin/syscallfilter -unit /run/bin/fobgw.service -- 			/run/bin/fobgw run -config /run/credentials/fobgw.service/fobgw.conf
	' unit "$u" "$BIN" "$ROOT/dist/fobgw.service" "$UNIT_UID"
}

cmd_ddns_move() {
	local new=${1:?usage: lab.sh ddns-move ADDR}
	local old
	old=$(cat "$BEG_ADDR_FILE")
	ip -n ${NSP}-beg addr del "$old/24" dev wan0
	ip -n ${NSP}-beg addr add "$new/24" dev wan0
	ip -n ${NSP}-beg route replace default via 198.51.100.1
	echo "$new" >"$BEG_ADDR_FILE"
	write_isp_hosts "$new"
	kill -HUP "$(cat "$LAB/dns-isp.pid")"
	log "home moved from $old to $new; home.example follows"
}

cmd_beg_allowed() {
	local prefixes=${1:?usage: lab.sh beg-allowed PREFIX[,PREFIX...]}
	nsx beg wg set "$BEG_NAME" peer "$(cat "$LAB/fob.pub")" allowed-ips "$prefixes"
	log "beg allows $(nsx beg wg show "$BEG_NAME" allowed-ips | cut -f2-) from the FOB"
}

# set_ports TABLE NS CHAIN-SPEC PORTS...: (re)write table ip TABLE in NS with one rule matching
# UDP to PORTS; no PORTS: delete the table.
set_ports() {
	local table=$1 ns=$2 spec=$3
	shift 3
	local ports p
	for p in "$@"; do
		[[ $p =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || die "port '$p': want a number from 1 to 65535"
	done
	ports=$(
		IFS=,
		echo "$*"
	)
	{
		echo "table ip $table {}"
		echo "delete table ip $table"
		if (($# > 0)); then
			printf 'table ip %s {\n\tcounter hits {}\n\tchain c {\n\t\t%s\n\t}\n}\n' "$table" "${spec//PORTS/$ports}"
		fi
	} | nsx "$ns" nft -f -
}

# cmd_block_udp: a port block, both ways. Dropping only the FOB's packets to PORT made a world
# that a network blocking the port from the start does not: the NAT mapping a tunnel on PORT had
# before the block lives on (the blocked packets still refresh it: conntrack sees them before the
# drop), so home's own handshake retries from PORT (wireguard-go starts them 15 s after its last
# unanswered packet, every 5 s for 90 s) come in, and the gateway's wireguard-go, answering them,
# roams the peer back to PORT, the entry the healer left, where its responses are dropped.
# Whether home's retries began before the gateway's first handshake on the next entry depended on
# when home's last packet fell: now and then TestEndpointList failed so.
cmd_block_udp() {
	(($# > 0)) || die "usage: lab.sh block-udp PORT..."
	set_ports fobl-block net "type filter hook forward priority filter; iifname \"muc0\" udp dport { PORTS } counter name hits drop; oifname \"muc0\" udp sport { PORTS } drop" "$@"
	log "the ISP drops UDP between the FOB and port(s) $*"
}

cmd_beg_port() {
	# conntrack maps beg's answers back to the port the FOB sent to; where the FOB still has a
	# flow to 13231 from the same address and port, the kernel gives the redirected one another
	# source port (beg's wg show then names that port).
	set_ports fobl-altport beg "type nat hook prerouting priority dstnat; iifname \"wan0\" udp dport { PORTS } counter name hits redirect to :13231" "$@"
	log "beg answers WireGuard on 13231${*:+ and $*}"
}

# cmd_path_mtu MTU: the link between the local ISP and home carries MTU bytes, both ends, and net
# drops every ICMP "fragmentation needed" (made by itself or passing through), so that a sender of
# larger datagrams with DF learns nothing: the black hole one layer under the tunnel (issue 15).
# 1500 is the ordinary world (the drop rule stays; nothing is too big for it to matter).
cmd_path_mtu() {
	local mtu=${1:-}
	[[ $mtu =~ ^[0-9]+$ ]] && ((mtu >= 1280 && mtu <= 1500)) ||
		die "path-mtu '$mtu': want the link's MTU, a number from 1280 to 1500 (1500: the ordinary world)"
	[[ -d $LAB ]] || die "no lab is up; run: bash bench/lab.sh up"
	ip -n ${NSP}-net link set beg0 mtu "$mtu"
	ip -n ${NSP}-beg link set wan0 mtu "$mtu"
	nsx net nft -f - <<-'EOF'
		table ip fobl-pathmtu
		delete table ip fobl-pathmtu
		table ip fobl-pathmtu {
			counter frag_needed {}
			chain out {
				type filter hook output priority filter; policy accept;
				icmp type destination-unreachable icmp code frag-needed counter name frag_needed drop
			}
			chain through {
				type filter hook forward priority filter; policy accept;
				icmp type destination-unreachable icmp code frag-needed counter name frag_needed drop
			}
		}
	EOF
	log "the ISP-to-home link is at MTU $mtu; ICMP \"fragmentation needed\" dropped at net"
}

# cmd_drift: what the tests' knobs changed since up, one line each: beg's WireGuard running, its
# allowed addresses and address, the ISP's blocked ports and path MTU, beg's extra ports, muc's forwarding and reverse-path
# filter, routes added at net. The gateway itself is bench's to check (its mode, pid, config).
cmd_drift() {
	[[ -d $LAB ]] || die "no lab is up; run: bash bench/lab.sh up"
	local v
	if beg_wg_up; then
		v=$(nsx beg wg show "$BEG_NAME" allowed-ips | cut -f2-)
		[[ $v == "10.1.200.2/32 192.168.86.0/24" ]] || echo "beg allows $v from the FOB"
	else
		echo "beg's WireGuard is down"
	fi
	v=$(cat "$BEG_ADDR_FILE")
	[[ $v == 198.51.100.2 ]] || echo "beg is at $v"
	! nsx net nft list table ip fobl-block >/dev/null 2>&1 || echo "the ISP drops UDP ports"
	! nsx beg nft list table ip fobl-altport >/dev/null 2>&1 || echo "beg answers on extra ports"
	v=$(ip -n "${NSP}-net" -o link show beg0 | sed -n 's/.* mtu \([0-9]*\) .*/\1/p')
	[[ $v == 1500 ]] || echo "the ISP-to-home link is at MTU $v"
	v=$(nsx muc sysctl -n net.ipv4.ip_forward)
	[[ $v == 1 ]] || echo "muc's ip_forward is $v"
	v=$(nsx muc sysctl -n net.ipv4.conf.all.rp_filter)
	[[ $v == "$(cat "$LAB/rp_filter.up")" ]] || echo "muc's rp_filter is $v"
	v=$(ip -n "${NSP}-net" route show 192.168.86.0/24)
	[[ -z $v ]] || echo "net routes the FOB's LAN: $v"
	! nsx net nft list table ip fobl-portal >/dev/null 2>&1 || echo "the ISP has a captive portal"
	breakout_drift
}

# cmd_reset: undo every knob cmd_drift reports.
cmd_reset() {
	[[ -d $LAB ]] || die "no lab is up; run: bash bench/lab.sh up"
	beg_wg_up || cmd_beg_start >/dev/null
	cmd_beg_allowed 10.1.200.2/32,192.168.86.0/24
	[[ $(cat "$BEG_ADDR_FILE") == 198.51.100.2 ]] || cmd_ddns_move 198.51.100.2
	set_ports fobl-block net ""
	set_ports fobl-altport beg ""
	cmd_path_mtu 1500
	nsx muc sysctl -qw net.ipv4.ip_forward=1
	nsx muc sysctl -qw net.ipv4.conf.all.rp_filter="$(cat "$LAB/rp_filter.up")"
	ip -n "${NSP}-net" route del 192.168.86.0/24 2>/dev/null || true
	cmd_portal_off >/dev/null
	breakout_reset
}

cmd_status() {
	ip netns list | grep "^${NSP}-" || echo "no lab namespaces"
	[[ -d $LAB ]] || return 0
	echo "gateway: $(cat "$LAB/gw.mode" 2>/dev/null)"
	gwx wg show "$GW_NAME" 2>/dev/null || true
	nsx muc wg show "$STOCK_NAME" 2>/dev/null || true
	nsx beg wg show "$BEG_NAME" 2>/dev/null || true
}

# The local ISP's captive portal (issue 21): net sends every TCP/80 connection of the FOB's WAN
# address (192.168.2.2; muc masquerades, so the LAN's too) to labportal on 192.168.2.1:$PORTAL_PORT
# and drops everything else it would forward from that address. labportal's login adds the
# sender to the set `allowed`, which lifts both. Counters: intercepted (connections sent to the
# portal), dropped (packets dropped). Lookups at the ISP resolver are net's own input: untouched.
PORTAL_PORT=8008
PORTAL_FOB=192.168.2.2

cmd_portal_on() {
	local mode=${1:-page} redirect=()
	case $mode in
	page) ;;
	redirect) redirect=(-redirect http://portal.example/) ;;
	*) die "portal-on '$mode': want page (the default: the login page for every request) or redirect" ;;
	esac
	[[ -d $LAB ]] || die "no lab is up; run: bash bench/lab.sh up"
	[[ -x $BIN/labportal ]] || die "$BIN/labportal is missing; run: bash bench/lab.sh build"
	cmd_portal_off >/dev/null 2>&1
	nsx net nft -f - <<-EOF
		table ip fobl-portal {
			set allowed { type ipv4_addr; }
			counter intercepted {}
			counter dropped {}
			chain pre {
				type nat hook prerouting priority dstnat; policy accept;
				iifname "muc0" ip saddr $PORTAL_FOB ip saddr != @allowed tcp dport 80 counter name intercepted redirect to :$PORTAL_PORT
			}
			chain through {
				type filter hook forward priority filter; policy accept;
				iifname "muc0" ip saddr $PORTAL_FOB ip saddr != @allowed counter name dropped drop
			}
		}
	EOF
	start labportal net "$BIN/labportal" -listen "192.168.2.1:$PORTAL_PORT" -allow "ip fobl-portal allowed" "${redirect[@]}"
	wait_for "the captive portal (log: $LAB/labportal.log)" 10 \
		nsx net curl -fsS --max-time 1 -o /dev/null "http://192.168.2.1:$PORTAL_PORT/portal.css"
	log "the ISP intercepts HTTP from $PORTAL_FOB ($mode) and drops the rest until a login"
}

cmd_portal_off() {
	stop_pid "$LAB/labportal.pid"
	nsx net nft -f - <<-'EOF'
		table ip fobl-portal {}
		delete table ip fobl-portal
	EOF
	log "no captive portal"
}

# beg_wg_up: beg's WireGuard process answers on its UAPI socket.
beg_wg_up() { nsx beg wg show "$BEG_NAME" >/dev/null 2>&1; }

# cmd_beg_stop: the home router's WireGuard goes away with its process: interface, address,
# route, sessions, and the FOB's endpoint it had learnt. The FOB's peer's AllowedIPs are kept in
# $LAB/beg.allowed for beg-start, as a router keeps its configuration across a reboot.
cmd_beg_stop() {
	[[ -d $LAB ]] || die "no lab is up; run: bash bench/lab.sh up"
	if beg_wg_up; then
		nsx beg wg show "$BEG_NAME" allowed-ips | cut -f2- | tr ' ' ',' >"$LAB/beg.allowed"
	fi
	echo "beg down at $(date +%s.%N)"
	stop_pid "$LAB/beg-wg.pid"
	wait_for "$BEG_NAME to disappear" 10 sh -c "! ip -n ${NSP}-beg link show $BEG_NAME"
	log "beg's WireGuard is down"
}

# cmd_beg_start: beg's WireGuard as after a reboot (see the usage); nothing when it runs.
cmd_beg_start() {
	[[ -d $LAB ]] || die "no lab is up; run: bash bench/lab.sh up"
	if beg_wg_up; then
		log "beg's WireGuard runs already"
		return 0
	fi
	local allowed=10.1.200.2/32,192.168.86.0/24
	[[ -s $LAB/beg.allowed ]] && allowed=$(cat "$LAB/beg.allowed")
	start beg-wg beg env WG_PROCESS_FOREGROUND=1 "$BIN/wireguard-go" "$BEG_NAME"
	wait_for "$BEG_NAME's UAPI socket" 10 beg_wg_up
	nsx beg wg set "$BEG_NAME" private-key "$LAB/beg.key" listen-port 13231 \
		peer "$(cat "$LAB/fob.pub")" allowed-ips "$allowed"
	ip -n ${NSP}-beg addr add 10.1.200.1/24 dev "$BEG_NAME"
	ip -n ${NSP}-beg link set "$BEG_NAME" mtu 1420 up
	ip -n ${NSP}-beg route add 192.168.86.0/24 dev "$BEG_NAME"
	echo "beg back at $(date +%s.%N)"
	log "beg's WireGuard is back (allowed from the FOB: $allowed; no endpoint)"
}

# muc_nat: muc's own NAT on its WAN, as a stock home router has (the breakout's tests take it away:
# a board has none).
muc_nat() {
	nsx muc nft -f - <<-'EOF'
		table ip fobl-nat {
			chain post { type nat hook postrouting priority srcnat; oifname "wan0" masquerade; }
		}
	EOF
}

# breakout_drift: what the local breakout's tests change (drift's part): more LAN devices, web at
# tv.example's addresses, muc without its own NAT.
breakout_drift() {
	local d
	for d in $(ip netns list | awk '{print $1}' | grep "^${NSP}-dev" || true); do
		echo "LAN device ${d#"${NSP}-"} is there"
	done
	[[ -z $(ip -n "${NSP}-web" -o addr show to 203.0.113.90) ]] || echo "web serves at 203.0.113.90 and .91"
	nsx muc nft list table ip fobl-nat >/dev/null 2>&1 || echo "muc has no NAT of its own"
}

# breakout_reset: undo what breakout_drift reports.
breakout_reset() {
	local d
	for d in $(ip netns list | awk '{print $1}' | grep "^${NSP}-dev" || true); do
		cmd_lan_device_del "${d#"${NSP}-"}"
	done
	cmd_cdn off
	nsx muc nft list table ip fobl-nat >/dev/null 2>&1 || muc_nat
}

# lan_device_name NAME: check a LAN device's name (it names a namespace and muc's end of its link).
lan_device_name() {
	[[ ${1:-} =~ ^dev[0-9]{1,2}$ ]] || die "LAN device '${1:-}': want a name like dev2"
}

# cmd_lan_device NAME ADDR [MAC]: another device on the FOB's LAN, in a namespace of its own.
cmd_lan_device() {
	local name=${1:-} addr=${2:-} mac=${3:-}
	lan_device_name "$name"
	[[ $addr =~ ^192\.168\.86\.[0-9]{1,3}$ ]] || die "lan-device $name: address '$addr': want one inside 192.168.86.0/24"
	[[ -d $LAB ]] || die "no lab is up; run: bash bench/lab.sh up"
	cmd_lan_device_del "$name"
	ip netns add "${NSP}-$name"
	ip -n "${NSP}-$name" link set lo up
	veth "$name" eth0 muc "lan-$name"
	if [[ -n $mac ]]; then
		ip -n "${NSP}-$name" link set eth0 address "$mac"
	fi
	ip -n ${NSP}-muc link set "lan-$name" master br0
	cmd_lan_device_addr "$name" "$addr"
	log "LAN device $name at $addr ($(ip -n "${NSP}-$name" -br link show eth0 | awk '{print $3}'))"
}

cmd_lan_device_addr() {
	local name=${1:-} addr=${2:-}
	lan_device_name "$name"
	[[ $addr =~ ^192\.168\.86\.[0-9]{1,3}$ ]] || die "lan-device-addr $name: address '$addr': want one inside 192.168.86.0/24"
	ip -n "${NSP}-$name" addr flush dev eth0
	ip -n "${NSP}-$name" addr add "$addr/24" dev eth0
	ip -n "${NSP}-$name" route replace default via 192.168.86.1
	# The bridge's ports forward at once; the device is reachable when the gateway answers it.
	wait_for "LAN device $name to reach the gateway" 10 nsx "$name" ping -n -c 1 -W 1 192.168.86.1
}

cmd_lan_device_del() {
	local name=${1:-}
	lan_device_name "$name"
	if ip netns list | awk '{print $1}' | grep -qx "${NSP}-$name"; then
		ip netns del "${NSP}-$name"
	fi
}

# cmd_cdn on|off: labweb also at 203.0.113.90 and .91 (addresses on web's eth0), or no more.
cmd_cdn() {
	local a
	[[ -d $LAB ]] || die "no lab is up; run: bash bench/lab.sh up"
	for a in 90 91; do
		stop_pid "$LAB/web$a.pid"
		ip -n ${NSP}-web addr del "203.0.113.$a/24" dev eth0 2>/dev/null || true
	done
	case ${1:-} in
	on)
		for a in 90 91; do
			ip -n ${NSP}-web addr add "203.0.113.$a/24" dev eth0
			start "web$a" web "$BIN/labweb" -listen "203.0.113.$a:80"
		done
		for a in 90 91; do
			wait_for "the web server at 203.0.113.$a" 10 nsx net curl -fsS --max-time 1 "http://203.0.113.$a/ip"
		done
		;;
	off) ;;
	*) die "usage: lab.sh cdn on|off" ;;
	esac
}

cmd_gw_cputicks() {
	local pid
	pid=$(cat "$LAB/gw.pid" 2>/dev/null) || {
		echo -
		return
	}
	# Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the command name.
	sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo -
}

main() {
	local cmd=${1:-}
	shift || true
	case $cmd in
	build) cmd_build ;;
	up) cmd_up ;;
	down) cmd_down ;;
	gw) cmd_gw "$@" ;;
	gw-over) gw_start "$@" ;;
	x)
		local ns=${1:?usage: lab.sh x NS CMD...}
		shift
		nsx "$ns" "$@"
		;;
	ddns-move) cmd_ddns_move "$@" ;;
	path-mtu) cmd_path_mtu "$@" ;;
	status) cmd_status ;;
	gw-cputicks) cmd_gw_cputicks ;;
	ifname)
		case ${1:-} in
		gw) echo "$GW_NAME" ;;
		stock) echo "$STOCK_NAME" ;;
		beg) echo "$BEG_NAME" ;;
		*) die "usage: lab.sh ifname gw|stock|beg" ;;
		esac
		;;
	beg-allowed) cmd_beg_allowed "$@" ;;
	block-udp) cmd_block_udp "$@" ;;
	unblock-udp) set_ports fobl-block net "" && log "the ISP drops nothing" ;;
	beg-port) cmd_beg_port "$@" ;;
	portal-on) cmd_portal_on "$@" ;;
	portal-off) cmd_portal_off ;;
	drift) cmd_drift ;;
	reset) cmd_reset ;;
	beg-stop) cmd_beg_stop ;;
	beg-start) cmd_beg_start ;;
	beg-restart) cmd_beg_stop && cmd_beg_start ;;
	lan-device) cmd_lan_device "$@" ;;
	lan-device-addr) cmd_lan_device_addr "$@" ;;
	lan-device-del) cmd_lan_device_del "$@" ;;
	cdn) cmd_cdn "$@" ;;
	*)
		sed -n '2,/^set /{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		[[ -z $cmd || $cmd == help || $cmd == -h ]] || exit 2
		;;
	esac
}

main "$@"
