#!/usr/bin/env bash
# The accuracy recipe: synthetic data -> records -> train with configs/recipe.yaml on this machine's CPU cores
# for at most 19 minutes (+ the final evaluation: under 20) -> evaluate on the test split.
#   bash benchmarks/recipe.sh captcha|lines [WORK_DIR]
# Prints the evaluation report (JSON) last. Needs the venv of `make venv`.
set -euo pipefail
kind=${1:?usage: recipe.sh captcha|lines [WORK_DIR]}
work=${2:-recipe-$kind}
shadownet=${SHADOWNET:-.venv/bin/shadownet}
config=$(dirname "$0")/../configs/recipe.yaml
case $kind in
  captcha) count=60000 ;;
  lines) count=60000 ;;
  *) echo "unknown kind $kind (captcha or lines)" >&2; exit 2 ;;
esac
mkdir -p "$work"
[ -f "$work/data/Train/sample.txt" ] || $shadownet synth --kind "$kind" --count $count --seed 1 --out "$work/data"
[ -f "$work/records/manifest.json" ] || $shadownet tfrecords --dataset-dir "$work/data" --save-dir "$work/records" \
  --validation-ratio 0.05
start=$(date +%s)
$shadownet train --tfrecords-dir "$work/records" --model-dir "$work/model" --config "$config"
echo "training took $(( $(date +%s) - start )) s"
$shadownet evaluate --tfrecords-dir "$work/records" --model-dir "$work/model" --split test \
  --report "$work/evaluation-test.json"
echo "train + evaluate took $(( $(date +%s) - start )) s"
cat "$work/evaluation-test.json"
