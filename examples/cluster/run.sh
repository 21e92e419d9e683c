#!/usr/bin/env bash
# Runs examples/cluster on this machine: Kamailio (dispatcher + registrar)
# on 127.0.0.1:${SIP_PORT:-5060} in front of N bot processes
# (examples/bot) on 127.0.0.1:5071, 5072, ... Each bot registers as
# botI@cluster.test and serves Prometheus metrics on 127.0.0.1:910I.
# Ctrl-C stops everything (each process by its PID).
#
#   examples/cluster/run.sh [N]        # N bots, default 3
#
# Then call sip:bots@cluster.test (load-balanced) or sip:bot2@cluster.test
# (one account) through 127.0.0.1:5060, e.g. with sipp:
#   sipp -sf examples/cluster/uac.xml -s bots -d 2000 -r 20 -m 200 127.0.0.1:5060
# (sipp's built-in -sn uac ignores the Record-Route set: use uac.xml).
set -euo pipefail

n="${1:-3}"
sip_port="${SIP_PORT:-5060}"
domain="cluster.test"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="$(mktemp -d)"
pids=()

cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

for i in $(seq 1 "$n"); do
	echo "1 sip:127.0.0.1:$((5070 + i))" >>"$dir/dispatcher.list"
done
sed -e "s|@SIP_PORT@|$sip_port|g; s|@DIR@|$dir|g; s|@DOMAIN@|$domain|g" "$here/kamailio.cfg" >"$dir/kamailio.cfg"

(cd "$root" && go build -o "$dir/bot" ./examples/bot)

kamailio -f "$dir/kamailio.cfg" -DD -E -P "$dir/kamailio.pid" -Y "$dir" -w "$dir" -m 64 -M 8 2>"$dir/kamailio.log" &
pids+=($!)
sleep 1

for i in $(seq 1 "$n"); do
	"$dir/bot" -server "127.0.0.1:$sip_port" -domain "$domain" -user "bot$i" \
		-listen "udp://127.0.0.1:$((5070 + i))" -media rtp -media-ip 127.0.0.1 \
		-metrics "127.0.0.1:$((9100 + i))" > >(sed -u "s/^/bot$i: /") 2>&1 &
	pids+=($!)
done

echo "cluster: Kamailio on 127.0.0.1:$sip_port (log $dir/kamailio.log), $n bots; Ctrl-C stops"
wait
