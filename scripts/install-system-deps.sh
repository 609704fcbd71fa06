#!/usr/bin/env bash
# install-system-deps.sh [GROUP...]: installs the Debian bookworm packages of
# each GROUP that are missing (all groups when none is named):
#   run    what the suite runs on (the official framework versions: torch
#          1.13.1, torchvision 0.14.1, OpenCV 4.6.0), the venv, pip, git
#   image  what the image targets need on the host: debootstrap (the base
#          image without a registry) and, when `docker` is missing, docker.io
#   test   what only the tests use: pytest, scikit-learn (metric cross-checks),
#          chromium (the report rendered headless), ffmpeg (mp4s with chosen
#          keyframe intervals, `nia synth --keyframe-interval`)
# Idempotent: does nothing when every package is already installed. Runs
# apt-get as root, else through sudo.
set -euo pipefail
# One line per group: `read -a` below reads one line.
declare -A GROUPS_OF=(
  [run]="python3-torch python3-torchvision python3-opencv python3-numpy python3-pandas python3-click python3-tqdm python3-matplotlib python3-pil python3-venv python3-pip git"
  [image]="debootstrap"
  [test]="python3-pytest python3-sklearn chromium ffmpeg"
)
groups=("$@")
((${#groups[@]})) || groups=(run image test)
packages=()
for group in "${groups[@]}"; do
  [ -n "${GROUPS_OF[$group]+x}" ] || { echo "install-system-deps: unknown group '$group' (run, image, test)" >&2; exit 2; }
  read -r -a members <<<"${GROUPS_OF[$group]}"
  packages+=("${members[@]}")
  if [ "$group" = image ] && ! command -v docker >/dev/null; then
    packages+=(docker.io)
  fi
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "installing Debian packages: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
