#!/usr/bin/env bash
# Emulate other machines on this one and train each demo model behind the
# pin (the Makefile's DEMO_TRAIN_ENV, common/pinned_env.py): other CPUs'
# kernel choices (what OpenBLAS, ATen and oneDNN would pick elsewhere) and a
# 16-core host's thread variables are exported as ambient variables, which
# the pin must override. Prints one line per machine and test: the sha256 of
# best.pt. docs/reproducibility.md has the table.
#
#   scripts/emulate-machines.sh [EPOCHS] [TESTS]     # defaults: 1 "l2cs rit dfer"
#   NO_PIN=1 scripts/emulate-machines.sh ...         # the same without the pin (the control)
#   BUILD=build/emu scripts/emulate-machines.sh ...  # on other data: BUILD/crops, BUILD/clips
# Needs the demo data (make demo-data, with the same BUILD); writes under build/emulate/.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-1}
TESTS=${2:-l2cs rit dfer}
PY=.venv/bin/python
PIN=$(make --no-print-directory -s -f Makefile -f - print-pin <<<'print-pin: ; @echo $(DEMO_TRAIN_ENV)')
[ "${NO_PIN:-0}" = 1 ] && PIN=

declare -A MACHINES=(
  [here]=""
  [bare]="-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
  [skylakex]="OPENBLAS_CORETYPE=SkylakeX ATEN_CPU_CAPABILITY=avx512 ONEDNN_MAX_CPU_ISA=AVX512_CORE DNNL_MAX_CPU_ISA=AVX512_CORE"
  [prescott]="OPENBLAS_CORETYPE=Prescott OPENBLAS_L2_SIZE=256 ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 OPENCV_CPU_DISABLE=AVX,AVX2,FMA3,POPCNT,SSE4_2"
  [zen16]="OPENBLAS_CORETYPE=Zen OMP_NUM_THREADS=16 OPENBLAS_NUM_THREADS=16 GOTO_NUM_THREADS=16 MKL_NUM_THREADS=16 OMP_THREAD_LIMIT=16 OMP_DYNAMIC=TRUE OMP_WAIT_POLICY=ACTIVE"
)
BUILD=${BUILD:-build}
declare -A DATA=([l2cs]=$BUILD/crops [rit]=$BUILD/crops [dfer]=$BUILD/clips)
declare -A SCRIPT=([l2cs]=l2cs/train.py [rit]=ritnet/train.py [dfer]=dfer/train.py)

for machine in here bare skylakex prescott zen16; do
  for test in $TESTS; do
    out=build/emulate/$test   # one folder: config.json records it, and it goes into the checkpoint
    rm -rf "$out"
    # shellcheck disable=SC2086
    env ${MACHINES[$machine]} $PIN $PY "${SCRIPT[$test]}" --preset demo --device cpu --data "${DATA[$test]}" \
      --out "$out" --epochs "$EPOCHS" >"build/emulate-$machine-$test.log" 2>&1
    echo "$machine $test $(sha256sum <"$out/best.pt" | cut -c1-16) $(tail -1 "$out/log.csv")"
  done
done
