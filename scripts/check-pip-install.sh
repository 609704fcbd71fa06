#!/usr/bin/env bash
# check-pip-install.sh: a plain `pip install -e .` into a throw-away venv over
# Debian's packages (NumPy 1.24, torch 1.13.1) gives a working `nia`: the
# package's own requirements (pyproject.toml) must not pull a NumPy 2 or a
# pyarrow that refuses NumPy 1.x. Needs PyPI; leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git ls-files -z | tar --null -cf - -T - | tar -xf - -C "$work" --one-top-level=src
/usr/bin/python3 -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check -e "$work/src"
cd "$work"
venv/bin/python - <<'PY'
import numpy, pandas as pd, pyarrow, torch
from common.engine.checkpoint import is_safetensors, save_checkpoint
print(f"numpy {numpy.__version__}, pyarrow {pyarrow.__version__}, torch {torch.__version__}")
assert numpy.__version__.startswith("1."), numpy.__version__
pd.DataFrame({"a": [1.0, 2.0]}).to_parquet("x.parquet")
assert pd.read_parquet("x.parquet")["a"].tolist() == [1.0, 2.0]
save_checkpoint("c.pt", {"model": {"w": torch.ones(2)}}, "check/1")  # safetensors, a runtime requirement
assert is_safetensors("c.pt")
PY
venv/bin/nia synth synth --subjects 1 --videos-per-subject 1 --frames-per-video 16 --size 320x180 >/dev/null
venv/bin/nia index synth --out manifest.parquet
echo "check-pip-install: plain 'pip install -e .' works beside Debian's NumPy"
