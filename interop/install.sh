#!/usr/bin/env bash
# Installs the real SIP peers the interop tests need (issue 6 lab; for now
# Kamailio with its WebSocket and TLS modules). Idempotent: packages already
# installed are skipped, and `apt-get update` runs only when something is
# missing and the package lists do not know it yet. Must run as root (as the
# test script does in CI); without apt-get it fails with a clear message.
set -euo pipefail

PACKAGES=(kamailio kamailio-websocket-modules kamailio-tls-modules)

missing=()
for p in "${PACKAGES[@]}"; do
	if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
		missing+=("$p")
	fi
done

if ((${#missing[@]} == 0)); then
	echo "interop/install.sh: all installed (${PACKAGES[*]})"
	exit 0
fi

if ! command -v apt-get >/dev/null; then
	echo "interop/install.sh: missing ${missing[*]} and no apt-get: install them by hand" >&2
	exit 1
fi
if [[ "$(id -u)" != "0" ]]; then
	echo "interop/install.sh: missing ${missing[*]}: run as root (or install them by hand)" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Update the package lists only when apt does not know a missing package.
need_update=0
for p in "${missing[@]}"; do
	if ! apt-cache show "$p" >/dev/null 2>&1; then
		need_update=1
		break
	fi
done
if ((need_update)); then
	echo "interop/install.sh: apt-get update"
	apt-get update -qq
fi
echo "interop/install.sh: installing ${missing[*]}"
# --no-install-recommends keeps the install small; policy-rc.d stops the
# package from starting its system service (the tests run their own).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e "$policy" ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
	created_policy=1
fi
trap '((created_policy)) && rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "interop/install.sh: done"
