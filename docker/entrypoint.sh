#!/bin/sh
# Image entry point. No arguments, or only options (starting with "-"): run
# this image's validation script on the mounted data, e.g.
#   python l2cs/run_valid_l2cs.py --data /data --weights /weights/l2cs.pt \
#          --out /results --split test --device cuda [your options]
# Options given on `docker run` come last and so win (`docker run IMAGE
# --split val`). NIA_DEVICE=cuda (the default) falls back to the CPU with a
# warning when no GPU is visible; NIA_DEVICE= leaves the script's own default.
# Anything else is run as a command: `docker run IMAGE python -c "..."`, `IMAGE id`.
set -eu
case "${1-}" in
  "" | -*)
    if [ -n "${NIA_DEVICE-}" ]; then
      set -- --device "$NIA_DEVICE" "$@"
    fi
    exec python "$NIA_ENTRY" --data /data --weights "/weights/$NIA_WEIGHTS" --out /results \
      --split "$NIA_SPLIT" "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
