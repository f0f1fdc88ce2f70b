#!/usr/bin/env bash
# Idempotent install of everything medlens, its tests and its demo need, from nothing:
# a virtual environment, torch (the CPU wheel on local disk, first), the package with its
# test extras and the test-only peers in requirements/*.txt, and the Debian packages in
# requirements/*.apt. Safe to run again; `make` runs it only when an input changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q --disable-pip-version-check --upgrade pip
# torch first, pinned: any other torch (or a dependency pulling one) downloads a CUDA build.
pip install -q --disable-pip-version-check "torch==2.13.0"
reqs=()
for f in requirements/*.txt; do
  [ -e "$f" ] && reqs+=(-r "$f")
done
# Hold torch at 2.13.0 while resolving everything else, so no dependency can replace it.
pin=$(mktemp)
trap 'rm -f "$pin"' EXIT
echo "torch==2.13.0" > "$pin"
pip install -q --disable-pip-version-check -c "$pin" -e ".[test]" "${reqs[@]}"
"$VENV/bin/python" - <<'PY'
import torch, sys
if not torch.__version__.startswith("2.13.0"):
    sys.exit(f"torch {torch.__version__} was installed over 2.13.0; a dependency pulled it in")
PY

# Debian packages the tests use (e.g. chromium for the report test). Data packages are not
# installed: `medlens datasets fetch` downloads and unpacks them into its cache itself.
mapfile -t pkgs < <(cat requirements/*.apt 2>/dev/null | sed 's/#.*//' | tr -s ' \t' '\n' | sed '/^$/d' | sort -u)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
apt_lists_empty() { ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; }
if [ "$(id -u)" = 0 ]; then
  if apt_lists_empty || [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "warning: Debian packages missing: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
  fi
  if apt_lists_empty; then
    echo "warning: apt package lists are empty; run 'sudo apt-get update' so that" \
         "'medlens datasets fetch' can download Debian data packages" >&2
  fi
fi
echo "medlens installed in $VENV"
