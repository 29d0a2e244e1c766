#!/usr/bin/env bash
# Builds a Debian bookworm + Python 3.11 base image with debootstrap and `docker import`, for machines that
# reach Debian's package mirrors but no container registry (`docker pull` fails, so python:3.11-slim-bookworm
# cannot be had). shadownet.Dockerfile works on it as on the official image: it is used as BASE_IMAGE.
#
#   Dockerfiles/scripts/base-image.sh IMAGE [DOCKER]
#
# Needs root (debootstrap creates device nodes and chowns files); installs debootstrap if it is missing.
# The mirror is debootstrap's default unless DEBIAN_MIRROR is set; a proxy (http_proxy, or apt's
# Acquire::http::Proxy) is used for the downloads and written nowhere in the image. The host's resolv.conf and
# hostname, which debootstrap copies in, are removed: Docker provides both at run time.
set -euo pipefail

image=${1:?usage: base-image.sh IMAGE [DOCKER]}
docker=${2:-docker}
suite=bookworm
packages=python3,python3-venv,ca-certificates

[[ $(id -u) == 0 ]] || { echo "base-image: debootstrap needs root (try: sudo make base-image)" >&2; exit 1; }
if ! command -v debootstrap >/dev/null; then
  command -v apt-get >/dev/null || { echo "base-image: needs debootstrap (a Debian or Ubuntu host)" >&2; exit 1; }
  echo "base-image: installing debootstrap" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

# A proxy set only in apt's configuration (Acquire::http::Proxy), handed to debootstrap's downloads and to apt
# in the chroot through the environment: nothing of it is written into the image.
if [[ -z ${http_proxy:-} ]]; then
  proxy=$(apt-config shell proxy Acquire::http::Proxy | sed -n "s/^proxy='\(.*\)'$/\1/p")
  if [[ -n $proxy && $proxy != DIRECT ]]; then export http_proxy=$proxy; fi
fi

rootfs=$(mktemp -d "${TMPDIR:-/tmp}/shadownet-rootfs.XXXXXX")
trap 'rm -rf --one-file-system "$rootfs"' EXIT

# minbase: essential packages + apt only (no init system, no man pages, no recommends).
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} \
  > "$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"

# Security and point-release updates: debootstrap installs the release as it was published. The update
# suites are taken from this host's apt sources (a Debian host is needed for debootstrap anyway).
# shellcheck disable=SC2016  # $(REPO_URI) is apt's format syntax, not the shell's
mapfile -t updates < <(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Identifier: Packages' 2>/dev/null \
  | awk -v s="$suite" '$2 == s "-updates" || $2 == s "-security"' | sort -u)
if ((${#updates[@]})); then
  for update in "${updates[@]}"; do echo "deb $update main"; done >> "$rootfs/etc/apt/sources.list"
  chroot "$rootfs" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get upgrade -y -qq' \
    > "$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
  rm -f "$rootfs.log"
else
  echo "base-image: no $suite-updates/-security in this host's apt sources: image has the release as published" >&2
fi

# Same trimming as Debian's slim images: no package lists, caches, docs or man pages; later apt installs in
# derived images skip documentation too.
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/01-nodoc" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
  "$rootfs"/var/log/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/tmp/* \
  "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname "$rootfs"/etc/machine-id
find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
find "$rootfs/usr/lib/python3.11" -name __pycache__ -type d -prune -exec rm -rf {} +
: > "$rootfs/etc/machine-id"

version=$(chroot "$rootfs" python3 -c 'import platform; print(platform.python_version())')
tar --numeric-owner --xattrs -C "$rootfs" -c . | "$docker" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "debootstrap $suite minbase + $packages (Python $version)" \
  - "$image" >/dev/null
size=$("$docker" image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}')
echo "base-image: $image (Debian $suite, Python $version, $size)"
