#!/bin/sh
# install-deps.sh VENV DIR
# Makes VENV, a venv over the base image's own site-packages (so Debian's,
# PyPI's CUDA or the official image's torch stays the one used), and installs
# into it, with no network, from DIR/py<X.Y>/ (build/wheels/ on the host):
#   - every pin in DIR/requirements-pypi.txt (PyPI-only packages, e.g. pyarrow,
#     safetensors) except the lines marked "host-only" (the Docker SDK);
#   - each pin of DIR/requirements-base.txt whose module the base cannot import.
# torchvision is not needed (l2cs/blocks.py says why) and not checked.
set -eu
venv=$1
dir=$2
python3 -c 'import torch' 2>/dev/null || {
  echo "install-deps: the base image has no importable torch; use a PyTorch 1.13 base" >&2
  exit 1
}
pyver=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
wheels="$dir/py$pyver"
[ -d "$wheels" ] || {
  echo "install-deps: no wheels for Python $pyver in build/wheels/py$pyver: run 'make wheels PYTHONS=$pyver' on a machine with PyPI access" >&2
  exit 1
}
python3 -m venv --system-site-packages "$venv"
grep -v 'host-only' "$dir/requirements-pypi.txt" >"$dir/requirements-image.txt"
missing=""
while read -r module requirement; do
  case "$module" in '' | '#'*) continue ;; esac
  if "$venv/bin/python" -c "import $module" 2>/dev/null; then
    echo "install-deps: base provides $module"
  else
    echo "install-deps: base lacks $module -> $requirement"
    missing="$missing $requirement"
  fi
done <"$dir/requirements-base.txt"
# shellcheck disable=SC2086  # $missing is a word list on purpose
"$venv/bin/python" -m pip install --no-index --find-links "$wheels" --no-cache-dir \
  --disable-pip-version-check --no-warn-script-location -r "$dir/requirements-image.txt" $missing
"$venv/bin/python" -c 'import torch, cv2, numpy, pandas, click, tqdm, matplotlib, pyarrow, orjson, msgspec, safetensors'
