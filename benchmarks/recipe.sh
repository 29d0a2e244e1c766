#!/usr/bin/env bash
# The accuracy recipe: synthetic data -> records -> train on this machine's CPU cores for at most
# 19 minutes (+ the final evaluation: under 20) -> evaluate on the test split.
#   bash benchmarks/recipe.sh captcha|lines [WORK_DIR]
# Prints the evaluation report (JSON) last. Needs the venv of `make venv`.
set -euo pipefail
kind=${1:?usage: recipe.sh captcha|lines [WORK_DIR]}
work=${2:-recipe-$kind}
shadownet=${SHADOWNET:-.venv/bin/shadownet}
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
$shadownet train --tfrecords-dir "$work/records" --model-dir "$work/model" --model shadownet_small \
  --mixed-precision bfloat16 --batch-size 64 --learning-rate 0.0015 --warmup-steps 300 --train-steps 3200 \
  --max-train-seconds 1140 --eval-every 400 --eval-max-samples 600 --log-every 50
echo "training took $(( $(date +%s) - start )) s"
$shadownet evaluate --tfrecords-dir "$work/records" --model-dir "$work/model" --split test \
  --report "$work/evaluation-test.json"
echo "train + evaluate took $(( $(date +%s) - start )) s"
cat "$work/evaluation-test.json"
