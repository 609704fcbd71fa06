#!/usr/bin/env bash
# stack-smoke.sh [VENV]: the three acceptance tests end to end on one Python
# stack, small and fast: `nia synth` -> index -> split -> crops and clips ->
# each test trains one epoch of a tiny network -> validates the test split ->
# `nia report` merges the three. The verdicts of such networks are no
# concern here (PASS or FAIL, exit 0 or 1); an error (exit 2: no verdict) or
# a missing metrics.json/report.json fails it. .ci/run runs it on the
# current PyPI stack (.venv-current); the demo-sized versions with their
# thresholds are tests/e2e/test_*_e2e.py (make test). Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
py=$venv/bin/python nia=$venv/bin/nia
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONPATH=$PWD
verdict() {  # verdict COMMAND...: run it; PASS (0) and FAIL (1) are both verdicts, anything else fails
  local code=0
  "$@" || code=$?
  [ "$code" -le 1 ] || { echo "stack-smoke: '$*' exited $code (no verdict)" >&2; exit 1; }
}
step() { echo "[stack-smoke] $*" >&2; }

step "synthetic data, index, split, crops, clips"
"$nia" synth "$work/synth" --subjects 10 --videos-per-subject 5 --frames-per-video 16 --size 320x180 --devices S \
  --seed 0 --workers 2 >/dev/null
"$nia" index "$work/synth" --out "$work/manifest.parquet" >/dev/null
"$nia" split "$work/manifest.parquet" >/dev/null
"$nia" crops "$work/manifest.parquet" "$work/crops" --workers 2 >/dev/null
"$nia" clips "$work/manifest.parquet" "$work/clips" --workers 2 >/dev/null

step "l2cs: one epoch, validation"
"$py" l2cs/train.py --preset demo --device cpu --epochs 1 --base-width 8 --input-size 64x32 --batch-size 8 \
  --workers 0 --data "$work/crops" --out "$work/train-l2cs" 2>/dev/null
verdict "$py" l2cs/run_valid_l2cs.py --data "$work/crops" --weights "$work/train-l2cs/best.pt" \
  --out "$work/res-l2cs" --split test --device cpu --workers 0

step "rit: one epoch, validation"
"$py" ritnet/train.py --preset demo --device cpu --epochs 1 --channels 4 --input-size 32x16 --batch-size 8 \
  --workers 0 --data "$work/crops" --out "$work/train-rit" 2>/dev/null
verdict "$py" ritnet/test.py --data "$work/crops" --weights "$work/train-rit/best.pt" --out "$work/res-rit" \
  --device cpu --workers 0

step "dfer: one epoch, validation"
"$py" dfer/train.py --preset demo --device cpu --epochs 1 --base-width 4 --segments 2 --input-size 32 \
  --batch-size 4 --workers 0 --data "$work/clips" --out "$work/train-dfer" 2>/dev/null
verdict "$py" dfer/valid_nia.py --data "$work/clips" --weights "$work/train-dfer/best.pt" --out "$work/res-dfer" \
  --device cpu --workers 0

step "report"
verdict "$nia" report "$work/res-l2cs" "$work/res-rit" "$work/res-dfer" --out "$work/report"
for file in res-l2cs/metrics.json res-rit/metrics.json res-dfer/metrics.json report/report.json; do
  [ -s "$work/$file" ] || { echo "stack-smoke: $file missing" >&2; exit 1; }
done
"$py" - <<'PY'
import torch, cv2
from importlib.metadata import version
print("stack-smoke: passed on torch", torch.__version__, "OpenCV", cv2.__version__,
      *(f"{name} {version(name)}" for name in ("click", "safetensors", "pandas", "numpy")))
PY
