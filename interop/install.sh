#!/usr/bin/env bash
# Installs the real SIP peers the interop tests need (issue 6 lab):
#   apt: Kamailio with its WebSocket, TLS and presence modules, sipp (sip-tester),
#        baresip (baresip-core), tshark and sngrep (the trace package's pcap
#        files are checked with them), the sipvicious scanner (svmap, svwar,
#        svcrack), nftables and iproute2 (loss tests);
#   npm: SIP.js, JsSIP and ws into interop/node/node_modules, exactly as
#        pinned by interop/node/package-lock.json (npm ci).
# Idempotent and fast when everything is present: packages already installed
# are skipped, `apt-get update` runs only when something is missing and the
# package lists do not know it yet, and `npm ci` runs only when
# node_modules is missing or was installed from another package-lock.json.
# Must run as root when an apt package is missing (as the test script does
# in CI); without apt-get it fails with a clear message.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
say() { echo "interop/install.sh: $*"; }

PACKAGES=(kamailio kamailio-websocket-modules kamailio-tls-modules sip-tester baresip-core tshark sngrep sipvicious)
# nftables and iproute2 for the root package's TestLossNetns (20% loss on lo
# inside a private network namespace; it runs as root, as CI does).
PACKAGES+=(nftables iproute2)
# Kamailio's presence server (presence, presence_xml, presence_dialoginfo,
# pua, pua_dialoginfo) for the TestPresence tests (interop/kamailio/presence.cfg).
PACKAGES+=(kamailio-presence-modules)
# libopus for media/opus (cgo): the package loads libopus.so.0 at run time;
# libopus-dev brings it (libopus0) and the headers for anyone linking it.
PACKAGES+=(libopus-dev)
# Node and npm come with the machine (CI: Node 20, npm 11); only when they
# are absent are Debian's packages installed.
command -v node >/dev/null || PACKAGES+=(nodejs)
command -v npm >/dev/null || PACKAGES+=(npm)
# Headless Chromium for the SIP.js-in-a-browser test (chromium.go): Debian's
# package only, no browser is downloaded; skipped when one is in PATH or
# SIPUA_CHROMIUM names one.
[[ -n "${SIPUA_CHROMIUM:-}" ]] || command -v chromium >/dev/null || PACKAGES+=(chromium)

missing=()
for p in "${PACKAGES[@]}"; do
	if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
		missing+=("$p")
	fi
done

if ((${#missing[@]} == 0)); then
	say "apt: all installed (${PACKAGES[*]})"
else
	if ! command -v apt-get >/dev/null; then
		say "missing ${missing[*]} and no apt-get: install them by hand" >&2
		exit 1
	fi
	if [[ "$(id -u)" != "0" ]]; then
		say "missing ${missing[*]}: run as root (or install them by hand)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	# tshark's wireshark-common asks whether non-root users may capture:
	# answer no beforehand (we only read files).
	if command -v debconf-set-selections >/dev/null; then
		echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	fi
	# Update the package lists only when apt does not know a missing package.
	need_update=0
	for p in "${missing[@]}"; do
		if ! apt-cache show "$p" >/dev/null 2>&1; then
			need_update=1
			break
		fi
	done
	if ((need_update)); then
		say "apt-get update"
		apt-get update -qq
	fi
	say "installing ${missing[*]}"
	# --no-install-recommends keeps the install small; policy-rc.d stops the
	# packages from starting their system services (the tests run their own).
	policy=/usr/sbin/policy-rc.d
	created_policy=0
	if [[ ! -e "$policy" ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		created_policy=1
	fi
	trap '((created_policy)) && rm -f "$policy"' EXIT
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	say "apt: done"
fi

# npm: node_modules is (re)built with `npm ci` when it is missing or when
# package-lock.json changed since the last install (a stamp file holds the
# lock file's checksum).
node_dir="$here/node"
stamp="$node_dir/node_modules/.sipua-lock.sha256"
want="$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" == "$have" && -d "$node_dir/node_modules/sip.js" && -d "$node_dir/node_modules/jssip" &&
	-d "$node_dir/node_modules/ws" ]]; then
	say "npm: node_modules up to date ($(node --version))"
else
	say "npm ci in interop/node ($(node --version), npm $(npm --version))"
	(cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	echo "$want" >"$stamp"
	say "npm: done"
fi
