#!/usr/bin/env bash
# Builds the base image nia-base:bookworm with no container registry at all:
# debootstrap a minimal Debian bookworm, apt-get the official framework
# versions (python3-torch 1.13.1, python3-torchvision 0.14.1, python3-opencv
# 4.6.0) without recommends, strip docs and caches, then `docker import`.
#
# Idempotent: does nothing when the image exists (FORCE=1 rebuilds). The
# debootstrap tarball and the downloaded .deb files are cached under CACHE_DIR,
# so a rebuild only needs the Debian mirror for `apt-get update`.
#
# Environment (all optional):
#   IMAGE            image to create           (nia-base:bookworm)
#   CACHE_DIR        debootstrap/.deb cache     (build/base)
#   MIRROR           Debian mirror              (the one this machine's apt uses)
#   SECURITY_MIRROR  Debian security mirror     (likewise; empty = none)
#   FORCE=1          rebuild even if IMAGE exists
# Needs root (debootstrap, chroot, mount) and a running Docker engine.
set -euo pipefail

IMAGE=${IMAGE:-nia-base:bookworm}
CACHE_DIR=${CACHE_DIR:-build/base}
SUITE=bookworm
PACKAGES=(python3 python3-torch python3-torchvision python3-opencv python3-numpy python3-pandas
          python3-click python3-tqdm python3-matplotlib python3-pil python3-pip python3-venv)

log() { echo "[base-offline] $*" >&2; }
# debootstrap prints one line per package and step; keep the rest.
quiet_debootstrap() { debootstrap "$@" 2>&1 | sed -E '/^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) /d' >&2; }
die() { log "error: $*"; exit 1; }

# The first URI that apt on this machine uses for a suite ("bookworm" or
# "bookworm-security"), from deb822 .sources or one-line .list files.
apt_uri_for_suite() {
  local suite=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v suite="$suite" '
      function flush() { if (uri != "" && hit) print uri; uri = ""; hit = 0 }
      /^[[:space:]]*$/ { flush(); next }
      /^URIs:/   { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
      END        { flush() }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2 }' "$f"
  done
}

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE exists (FORCE=1 rebuilds it)"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "debootstrap and chroot need root: run as root (CI does) or with sudo"
command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap (make deps)"
docker info >/dev/null 2>&1 || die "no Docker engine answers 'docker info'"

MIRROR=${MIRROR:-$(apt_uri_for_suite "$SUITE" | sed -n 1p)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR-$(apt_uri_for_suite "$SUITE-security" | sed -n 1p)}
log "mirror $MIRROR, security mirror ${SECURITY_MIRROR:-none}"

mkdir -p "$CACHE_DIR/debs"
CACHE_DIR=$(cd "$CACHE_DIR" && pwd)
TARBALL="$CACHE_DIR/debootstrap-$SUITE-minbase.tgz"
ROOTFS=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")

cleanup() {
  local m
  for m in var/cache/apt/archives dev proc; do
    mountpoint -q "$ROOTFS/$m" && umount -l "$ROOTFS/$m"
  done
  rm -rf --one-file-system "$ROOTFS"
}
trap cleanup EXIT

if [ ! -s "$TARBALL" ]; then
  log "downloading the minbase system into $TARBALL (cached for rebuilds)"
  quiet_debootstrap --variant=minbase --make-tarball="$TARBALL.part" "$SUITE" "$ROOTFS" "$MIRROR"
  mv "$TARBALL.part" "$TARBALL"
  rm -rf --one-file-system "$ROOTFS" && mkdir -p "$ROOTFS"
fi
log "unpacking the minbase system from $TARBALL"
quiet_debootstrap --variant=minbase --unpack-tarball="$TARBALL" "$SUITE" "$ROOTFS" "$MIRROR"

# apt inside the image: no recommends, no docs/man pages/translations.
{
  echo "deb $MIRROR $SUITE main"
  echo "deb $MIRROR $SUITE-updates main"
  [ -z "$SECURITY_MIRROR" ] || echo "deb $SECURITY_MIRROR $SUITE-security main"
} >"$ROOTFS/etc/apt/sources.list"
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\nAPT::Sandbox::User "root";\n' \
  >"$ROOTFS/etc/apt/apt.conf.d/90nia-no-recommends"
printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
  'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
  'path-exclude=/usr/share/locale/*' 'path-include=/usr/share/locale/locale.alias' \
  >"$ROOTFS/etc/dpkg/dpkg.cfg.d/90nia-nodoc"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"  # start no services in the chroot
chmod +x "$ROOTFS/usr/sbin/policy-rc.d"

mount -t proc proc "$ROOTFS/proc"
mount --bind /dev "$ROOTFS/dev"
mount --bind "$CACHE_DIR/debs" "$ROOTFS/var/cache/apt/archives"
log "installing ${PACKAGES[*]}"
chroot "$ROOTFS" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 sh -c \
  "apt-get update -qq && apt-get install -y -qq ${PACKAGES[*]} >/dev/null" >&2 \
  2> >(grep -v -e 'posix_openpt' -e 'apt-utils is not installed' >&2)
chroot "$ROOTFS" python3 -c "import torch, torchvision, cv2; print('[base-offline] torch', torch.__version__, 'torchvision', torchvision.__version__, 'cv2', cv2.__version__)" >&2
umount "$ROOTFS/var/cache/apt/archives" "$ROOTFS/dev" "$ROOTFS/proc"

log "cleaning apt lists, docs and logs"
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/log/* "$ROOTFS"/tmp/*
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/*
: >"$ROOTFS/etc/resolv.conf"
rm -f "$ROOTFS/usr/sbin/policy-rc.d"

log "importing into $IMAGE"
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --change "LABEL org.opencontainers.image.title=nia-base org.opencontainers.image.description=\"Debian $SUITE + python3-torch 1.13.1, python3-opencv 4.6.0 (debootstrap, no registry)\" org.opencontainers.image.base.name=debian:$SUITE" \
  --message "debootstrap $SUITE minbase from $MIRROR + ${PACKAGES[*]}" \
  - "$IMAGE" >&2
docker image ls "$IMAGE" >&2
