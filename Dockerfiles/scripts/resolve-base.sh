#!/usr/bin/env bash
# Prints the base image an image build uses (the Makefile passes it as --build-arg BASE_IMAGE):
#
#   resolve-base.sh BASE_IMAGE USE_LOCAL_BASE LOCAL_BASE_IMAGE DOCKERFILE [DOCKER]
#
# - BASE_IMAGE non-empty: that image, as given.
# - USE_LOCAL_BASE=1: LOCAL_BASE_IMAGE, built by base-image.sh first if it is not here.
# - USE_LOCAL_BASE=0: the DOCKERFILE's default (its `ARG BASE_IMAGE=` line, pinned by digest; the Makefile passes
#   Dockerfiles/shadownet.Dockerfile, which all three images are built from).
# - USE_LOCAL_BASE=auto: the default if it is here or can be pulled (within PULL_TIMEOUT seconds, default 120),
#   otherwise LOCAL_BASE_IMAGE (built if needed): a machine without a registry needs no setting.
# Progress goes to stderr; stdout is the image name only.
set -euo pipefail

explicit=$1 mode=$2 local_base=$3 dockerfile=$4 docker=${5:-docker}
default=$(sed -n 's/^ARG BASE_IMAGE=//p' "$dockerfile")
[[ -n $default ]] || { echo "resolve-base: no 'ARG BASE_IMAGE=' default in $dockerfile" >&2; exit 2; }
here=$(dirname "$0")

local_base() {
  "$docker" image inspect "$local_base" >/dev/null 2>&1 || "$here/base-image.sh" "$local_base" "$docker" >&2
  echo "$local_base"
}

if [[ -n $explicit ]]; then
  echo "$explicit"
  exit 0
fi
case $mode in
  1) local_base ;;
  0) echo "$default" ;;
  auto)
    if "$docker" image inspect "$default" >/dev/null 2>&1 \
      || timeout "${PULL_TIMEOUT:-120}" "$docker" pull --quiet "$default" >&2; then
      echo "$default"
    else
      echo "resolve-base: $default cannot be pulled; building on $local_base instead" >&2
      local_base
    fi
    ;;
  *) echo "resolve-base: USE_LOCAL_BASE must be 1, 0 or auto, not '$mode'" >&2; exit 2 ;;
esac
