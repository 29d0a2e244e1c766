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
PYTEST_ARGS ?=

BIN := $(VENV)/bin
SHADOWNET := $(BIN)/shadownet
STAMP := $(VENV)/.installed

.PHONY: help venv sample demo test test-fast bench clean

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

demo: $(STAMP) sample ## the main job on the sample data: validate -> TFRecords -> read back with tf.data
	$(SHADOWNET) validate --dataset-dir $(DATA_DIR) --report $(OUTPUT_DIR)/validation.json
	$(SHADOWNET) tfrecords --dataset-dir $(DATA_DIR) --save-dir $(OUTPUT_DIR)/records --seed $(SEED)
	$(SHADOWNET) inspect --tfrecords-dir $(OUTPUT_DIR)/records

test: $(STAMP) ## run every test, the slow end-to-end ones included
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## the tests without the slow ones
	$(BIN)/python -m pytest -m 'not slow' $(PYTEST_ARGS)

bench: $(STAMP) ## benchmarks/tfrecords.py: 10k images, memory at 100k (several minutes)
	$(BIN)/python benchmarks/tfrecords.py --count 10000 --rss-count 100000

clean: ## remove generated data and outputs (keeps .venv)
	rm -rf $(OUTPUT_DIR) data/sample .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
