#!/usr/bin/env bash
# Installs the Debian bookworm packages the suite runs on (the official
# framework versions: torch 1.13.1, torchvision 0.14.1, OpenCV 4.6.0).
# Idempotent: does nothing when every package is already installed.
set -euo pipefail
packages=(python3-torch python3-torchvision python3-opencv python3-numpy python3-pandas
          python3-click python3-tqdm python3-matplotlib python3-pytest python3-venv python3-pip
          debootstrap
          python3-sklearn chromium  # test-only: metric cross-checks, report rendered in a headless browser
          ffmpeg)  # test/synth-only: mp4s with chosen keyframe intervals (nia synth --keyframe-interval); nothing reads videos with it
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
