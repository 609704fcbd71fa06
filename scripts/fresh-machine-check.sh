#!/usr/bin/env bash
# fresh-machine-check.sh [MAKE ARGS...]: runs `make validate-all` (or the
# given make arguments) as a new user would on a fresh Debian 12 machine with
# Docker, and times it.
#
# The "machine" is a container of a plain Debian bookworm minbase (debootstrap,
# `docker import`: no registry; no Python, no torch, nothing of ours), with
# the host's Docker socket, into which only the machine's preconditions are
# installed (docker.io for the docker client, git, make, as on any machine
# that cloned the repo and has Docker). The repository is a fresh `git clone`
# of HEAD (no .venv, no build/), bind-mounted at the same path as on the host,
# because the containers that `make` starts through the socket mount host
# paths. With CAP_SYS_ADMIN (not --privileged, which a nested engine may
# refuse), because `make base-offline` runs debootstrap (chroot, mounts) as it
# would as root on a real machine. The base images get their own
# name (nia-base:fresh), so that nothing built on the host before is reused.
# The host's own network setup comes along read-only, as a real machine on
# this network has it: its extra CA certificates (a TLS-inspecting egress
# proxy) and /etc/pip.conf, when present.
#
# Output: the full log in WORK/fresh.log, the time on its last line.
# Environment: WORK (default /tmp/nia-fresh), IMAGE (nia-fresh:bookworm),
# MIRROR (the Debian mirror), TARBALL (a debootstrap --make-tarball file to
# reuse; default build/base/debootstrap-bookworm-minbase.tgz when present).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/nia-fresh}
IMAGE=${IMAGE:-nia-fresh:bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
TARBALL=${TARBALL:-build/base/debootstrap-bookworm-minbase.tgz}
[ "$(id -u)" -eq 0 ] || { echo "fresh-machine-check: run as root (debootstrap)" >&2; exit 2; }

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  rootfs=$(mktemp -d)
  trap 'rm -rf --one-file-system "$rootfs"' EXIT
  if [ -s "$TARBALL" ]; then
    debootstrap --variant=minbase --unpack-tarball="$(realpath "$TARBALL")" bookworm "$rootfs" "$MIRROR" >/dev/null
  else
    debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >/dev/null
  fi
  echo "deb $MIRROR bookworm main" >"$rootfs/etc/apt/sources.list"
  tar --numeric-owner -C "$rootfs" -c . | docker import --change 'ENV LANG=C.UTF-8' - "$IMAGE" >/dev/null
  echo "fresh-machine-check: made $IMAGE (Debian bookworm minbase)" >&2
fi

# nothing that an earlier check built may be reused
docker rmi --force nia-base:fresh nia-base:fresh-cuda >/dev/null 2>&1 || true
rm -rf "$WORK" && mkdir -p "$WORK"
git clone --quiet --no-hardlinks "$PWD" "$WORK/repo"
git -C "$WORK/repo" checkout --quiet "$(git rev-parse HEAD)"
args=("$@")
((${#args[@]})) || args=(validate-all)
echo "fresh-machine-check: make ${args[*]} in a fresh clone of $(git rev-parse --short HEAD) on $IMAGE" >&2
network_setup=()
[ -d /usr/local/share/ca-certificates ] && network_setup+=(-v /usr/local/share/ca-certificates:/usr/local/share/ca-certificates:ro)
[ -f /etc/pip.conf ] && network_setup+=(-v /etc/pip.conf:/etc/pip.conf:ro)
set +e
docker run --pull never --rm "${network_setup[@]}" --cap-add SYS_ADMIN --security-opt apparmor=unconfined --network host -v /var/run/docker.sock:/var/run/docker.sock \
  -v "$WORK:$WORK" -w "$WORK/repo" -e DEBIAN_FRONTEND=noninteractive "$IMAGE" bash -c '
    set -e
    start=$(date +%s)
    echo "== the preconditions: Docker (client), git, make"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends docker.io git make ca-certificates >/dev/null
    pre=$(date +%s)
    echo "== make $*"
    set +e
    make "$@" CPU_BASE_IMAGE=nia-base:fresh CUDA_BASE_IMAGE=nia-base:fresh-cuda
    status=$?
    end=$(date +%s)
    echo "== preconditions $((pre - start)) s; make $* $((end - pre)) s; exit $status"
    exit $status' fresh-machine "${args[@]}" 2>&1 | tee "$WORK/fresh.log"
status=${PIPESTATUS[0]}
echo "fresh-machine-check: exit $status; log $WORK/fresh.log" >&2
exit "$status"
