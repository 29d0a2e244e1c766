# shadownet: `make help` lists the targets. Variables with ?= can be set on the command line.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV ?= .venv
DATA_DIR ?= data/sample
OUTPUT_DIR ?= output
DEMO_COUNT ?= 2000
DEMO_KIND ?= lines
SEED ?= 0
MODEL ?= shadownet_small
TRAIN_STEPS ?= 150
MODEL_DIR ?= $(OUTPUT_DIR)/model
EXPORT_DIR ?= $(OUTPUT_DIR)/export
PYTEST_ARGS ?=

BIN := $(VENV)/bin
SHADOWNET := $(BIN)/shadownet
STAMP := $(VENV)/.installed

.PHONY: help venv sample demo test test-fast bench bench-train clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "shadownet needs Python 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[tf,dev]'
	touch $@

venv: $(STAMP) ## create .venv with shadownet, TensorFlow (CPU) and the test tools

$(DATA_DIR)/Train/sample.txt: | $(STAMP)
	$(SHADOWNET) synth --out $(DATA_DIR) --count $(DEMO_COUNT) --kind $(DEMO_KIND) --seed $(SEED)

sample: $(DATA_DIR)/Train/sample.txt ## generate the small synthetic sample dataset in DATA_DIR (seeded)

demo: $(STAMP) sample ## the whole job on the sample: validate, TFRecords, train, evaluate, export, predict
	$(SHADOWNET) validate --dataset-dir $(DATA_DIR) --report $(OUTPUT_DIR)/validation.json
	$(SHADOWNET) tfrecords --dataset-dir $(DATA_DIR) --save-dir $(OUTPUT_DIR)/records --seed $(SEED)
	$(SHADOWNET) inspect --tfrecords-dir $(OUTPUT_DIR)/records
	$(SHADOWNET) train --tfrecords-dir $(OUTPUT_DIR)/records --model-dir $(MODEL_DIR) --model $(MODEL) \
		--train-steps $(TRAIN_STEPS) --batch-size 32 --warmup-steps 50 --eval-every 50 --log-every 25
	$(SHADOWNET) evaluate --tfrecords-dir $(OUTPUT_DIR)/records --model-dir $(MODEL_DIR) \
		--report $(OUTPUT_DIR)/evaluation.json
	rm -rf $(EXPORT_DIR)
	$(SHADOWNET) export --model-dir $(MODEL_DIR) --export-dir $(EXPORT_DIR)
	$(SHADOWNET) predict --model $(EXPORT_DIR)/shadownet --json \
		$$(sed -n '1,2s/ .*//p' $(DATA_DIR)/Test/sample.txt | sed 's|^/||; s|^|$(DATA_DIR)/|')

test: $(STAMP) ## run every test, the slow end-to-end ones included
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## the tests without the slow ones
	$(BIN)/python -m pytest -m 'not slow' $(PYTEST_ARGS)

bench: $(STAMP) ## benchmarks/tfrecords.py: 10k images, memory at 100k (several minutes)
	$(BIN)/python benchmarks/tfrecords.py --count 10000 --rss-count 100000

bench-train: $(STAMP) ## benchmarks/train.py: training, input pipeline and serving speed
	$(BIN)/python benchmarks/train.py

clean: ## remove generated data and outputs (keeps .venv)
	rm -rf $(OUTPUT_DIR) data/sample .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
