#!/usr/bin/env bash
# Downloads the files of a hash-locked requirements file into a wheelhouse folder, for an image build that
# installs them with no network (PIP_SOURCE=wheelhouse). Runs on the host, so pip uses the host's settings:
# its index, proxy and CA bundle (PIP_CERT / pip.conf), which never enter an image.
#
#   Dockerfiles/scripts/wheelhouse.sh DIR REQUIREMENTS...
#
# Wheels for the images' platform (Linux x86_64, CPython 3.11), whatever the host's; a file already in DIR
# whose hash matches is not downloaded again, and files that no requirements file lists are removed.
set -euo pipefail

dir=${1:?usage: wheelhouse.sh DIR REQUIREMENTS...}
shift
mkdir -p "$dir"
python=${PYTHON:-python3}
# pip does not widen a manylinux tag to the older ones it implies: name them all, up to glibc 2.36 (bookworm's).
platforms=(--platform manylinux1_x86_64 --platform manylinux2010_x86_64 --platform manylinux2014_x86_64)
for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_x86_64"); done
for requirements in "$@"; do
  "$python" -m pip download --quiet --disable-pip-version-check --require-hashes --no-deps \
    --only-binary=:all: "${platforms[@]}" --python-version 3.11 --implementation cp --abi cp311 \
    --dest "$dir" -r "$requirements"
done
# Files no requirements file names any more (older pins) would only swell the build context: drop them.
for file in "$dir"/*; do
  [[ -f $file ]] || continue
  hash=$(sha256sum "$file" | cut -d' ' -f1)
  grep -q -- "--hash=sha256:$hash" "$@" || { echo "wheelhouse: dropping unlisted $(basename "$file")"; rm -f "$file"; }
done
