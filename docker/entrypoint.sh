#!/bin/sh
# Image entry point. No arguments, or only options (starting with "-"): run
# this image's validation script on the mounted data, e.g.
#   python l2cs/run_valid_l2cs.py --data /data --weights /weights/l2cs.pt \
#          --out /results --split test --device cuda [your options]
# Options given on `docker run` come last and so win (`docker run IMAGE
# --split val`). The weights are /weights/$NIA_WEIGHTS when mounted, else the
# ones baked into the image (`make build-<test> BAKE=1`); with --predictions
# no weights are passed. NIA_DEVICE=cuda (the default) falls back to the CPU
# with a warning when no GPU is visible; NIA_DEVICE= leaves the script's own
# default. Before running, the inputs are checked: with nothing mounted, one
# line says what to mount, exit 2.
#   --self-check   torch version, CUDA/cuDNN visibility, the weights' SHA-256
# Anything else is run as a command: `docker run IMAGE python -c "..."`, `IMAGE id`.
set -eu
NIA_DATA_DIR=${NIA_DATA_DIR:-/data}
NIA_WEIGHTS_DIR=${NIA_WEIGHTS_DIR:-/weights}
NIA_BAKED_DIR=${NIA_BAKED_DIR:-/opt/nia/weights}
NIA_RESULTS_DIR=${NIA_RESULTS_DIR:-/results}

has_option() {  # has_option NAME ARGS...: true when ARGS has NAME or NAME=...
  name=$1
  shift
  for arg in "$@"; do
    case "$arg" in "$name" | "$name"=*) return 0 ;; esac
  done
  return 1
}

# The weights file to use: mounted first, then baked; empty when neither.
weights_file() {
  if [ -f "$NIA_WEIGHTS_DIR/$NIA_WEIGHTS" ]; then
    echo "$NIA_WEIGHTS_DIR/$NIA_WEIGHTS"
  elif [ -f "$NIA_BAKED_DIR/$NIA_WEIGHTS" ]; then
    echo "$NIA_BAKED_DIR/$NIA_WEIGHTS"
  fi
}

# A mount point at $1 (a bind mount or a volume), from /proc/self/mountinfo.
is_mount() {
  awk -v dir="$1" '$5 == dir { found = 1 } END { exit !found }' /proc/self/mountinfo 2>/dev/null
}

# One line naming every input that is missing, exit 2; nothing when all are there.
check_inputs() {
  missing=""
  if [ -z "$(ls -A "$NIA_DATA_DIR" 2>/dev/null)" ]; then
    missing="the data read-only at $NIA_DATA_DIR (-v DATA:$NIA_DATA_DIR:ro)"
  fi
  if ! has_option --predictions "$@" && [ -z "$(weights_file)" ]; then
    missing="${missing:+$missing, }the weights at $NIA_WEIGHTS_DIR (-v DIR:$NIA_WEIGHTS_DIR:ro with DIR/$NIA_WEIGHTS)"
  fi
  if ! is_mount "$NIA_RESULTS_DIR" && [ -z "${NIA_RESULTS_UNMOUNTED_OK-}" ]; then
    missing="${missing:+$missing, }a writable results folder at $NIA_RESULTS_DIR (-v RESULTS:$NIA_RESULTS_DIR)"
  fi
  if [ -n "$missing" ]; then
    echo "${NIA_IMAGE:-this image}: nothing to validate: mount $missing; --self-check reports torch, CUDA and the weights" >&2
    exit 2
  fi
}

case "${1-}" in
  --self-check)
    shift
    exec python "$(dirname "$0")/self_check.py" --weights "$(weights_file)" "$@"
    ;;
  "" | -*)
    if has_option --help "$@" || has_option -h "$@"; then
      exec python "$NIA_ENTRY" --help
    fi
    check_inputs "$@"
    if [ -n "${NIA_DEVICE-}" ]; then
      set -- --device "$NIA_DEVICE" "$@"
    fi
    set -- --out "$NIA_RESULTS_DIR" --split "$NIA_SPLIT" "$@"
    if ! has_option --predictions "$@"; then
      set -- --weights "$(weights_file)" "$@"
    fi
    exec python "$NIA_ENTRY" --data "$NIA_DATA_DIR" "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
