#!/usr/bin/env bash
# Tags and pushes built images to a registry, prints each pushed reference with its digest, and records them
# in an images file (JSON) that `shadownet jobs render --images FILE` reads for the specs' image fields.
#
#   Dockerfiles/scripts/push.sh DOCKER PUSH_PREFIX TAG IMAGES_FILE NAME=LOCAL_IMAGE...
#
# NAME=LOCAL_IMAGE: e.g. train-cpu=shadownet/train-cpu:0.1.0, pushed as PUSH_PREFIX/train-cpu:TAG. Entries of
# IMAGES_FILE for other names are kept (make push-cpu updates the CPU image's only); the file is replaced
# whole, never left half-written. Logging in to the registry is the caller's (see docs/docker.md).
set -euo pipefail

docker=${1:?usage: push.sh DOCKER PUSH_PREFIX TAG IMAGES_FILE NAME=LOCAL_IMAGE...}
prefix=${2:?PUSH_PREFIX (REGISTRY=host[:port]/namespace) is required}
tag=${3:?TAG is required}
images_file=${4:?IMAGES_FILE is required}
shift 4
python=${PYTHON:-python3}

entries=()
for item in "$@"; do
  name=${item%%=*}
  local_image=${item#*=}
  if ! "$docker" image inspect "$local_image" >/dev/null 2>&1; then
    echo "push: $local_image is not built here (make build-${name#train-})" >&2
    exit 1
  fi
  remote="$prefix/$name:$tag"
  "$docker" tag "$local_image" "$remote"
  "$docker" push "$remote" >&2
  # The registry's digest of what was just pushed: the RepoDigest of this repository.
  pinned=$("$docker" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$remote" |
    grep -F "$prefix/$name@sha256:" | head -n 1 || true)
  if [[ -z $pinned ]]; then
    echo "push: the registry reported no digest for $remote" >&2
    exit 1
  fi
  echo "pushed $remote ${pinned#*@}"
  entries+=("$name" "$remote" "$pinned")
done

mkdir -p "$(dirname "$images_file")"
"$python" - "$images_file" "${entries[@]}" <<'EOF'
import json, os, sys

path, values = sys.argv[1], sys.argv[2:]
images = {}
if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
        images = json.load(f)
for i in range(0, len(values), 3):
    name, tagged, pinned = values[i:i + 3]
    images[name] = {"tag": tagged, "digest": pinned.split("@", 1)[1], "reference": pinned}
temporary = f"{path}.partial"
with open(temporary, "w", encoding="utf-8") as f:
    json.dump(images, f, indent=2, sort_keys=True)
    f.write("\n")
os.replace(temporary, path)
EOF
echo "wrote $images_file"
