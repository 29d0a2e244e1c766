#!/usr/bin/env bash
# Stages the build context of one image in DIR: a small folder with only what the Dockerfile copies, so that
# no image build sends another image's wheels (the GPU wheelhouse is several GB) or the repository's data.
#
#   Dockerfiles/scripts/context.sh DIR REQUIREMENTS [WHEELHOUSE] [EXTRA_CA]
#
#   DIR/requirements.txt        the image's lock file          DIR/build-requirements.txt  requirements/build.txt
#   DIR/wheels/                 hard links into WHEELHOUSE (empty without one: PIP_SOURCE=index)
#   DIR/ca/                     EXTRA_CA as extra.crt (build stage only), else empty
#   DIR/src/                    pyproject.toml, README.md, code/ (the package source), configs/ (shipped in
#                               the package as shadownet/configs, see pyproject.toml)
#   DIR/scripts/install.sh
# Run from the repository root.
set -euo pipefail

dir=${1:?usage: context.sh DIR REQUIREMENTS [WHEELHOUSE] [EXTRA_CA]}
requirements=${2:?usage: context.sh DIR REQUIREMENTS [WHEELHOUSE] [EXTRA_CA]}
wheelhouse=${3:-}
extra_ca=${4:-}

rm -rf "$dir"
mkdir -p "$dir/wheels" "$dir/ca" "$dir/src" "$dir/scripts"
cp "$requirements" "$dir/requirements.txt"
cp requirements/build.txt "$dir/build-requirements.txt"
cp Dockerfiles/scripts/install.sh "$dir/scripts/"
tar -c --exclude=__pycache__ --exclude='*.egg-info' pyproject.toml README.md code configs | tar -x -C "$dir/src"
if [[ -n $wheelhouse ]]; then
  # Hard links cost no space; a wheelhouse on another file system is copied.
  cp -al "$wheelhouse/." "$dir/wheels/" 2>/dev/null || cp -a "$wheelhouse/." "$dir/wheels/"
fi
if [[ -n $extra_ca ]]; then
  if ! grep -q -- "-----BEGIN CERTIFICATE-----" "$extra_ca" || grep -q -- "PRIVATE KEY" "$extra_ca"; then
    echo "context.sh: EXTRA_CA=$extra_ca must be PEM certificates only (no keys)" >&2
    exit 2
  fi
  cp "$extra_ca" "$dir/ca/extra.crt"
fi
