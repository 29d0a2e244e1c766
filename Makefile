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
# The demo's training settings: configs/demo.yaml. MODEL / TRAIN_STEPS (empty: the config's) override two of them.
CONFIG ?= configs/demo.yaml
MODEL ?=
TRAIN_STEPS ?=
MODEL_DIR ?= $(OUTPUT_DIR)/model
EXPORT_DIR ?= $(OUTPUT_DIR)/export
PYTEST_ARGS ?=
# make bench-accuracy: e.g. --datasets words --seconds 300 --work /tmp/bench
BENCH_ARGS ?=

# Images: $(IMAGE_PREFIX)/tfrecords:$(TAG), $(IMAGE_PREFIX)/train-cpu:$(TAG), $(IMAGE_PREFIX)/train-gpu:$(TAG).
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' code/shadownet/__init__.py)
IMAGE_PREFIX ?= shadownet
TAG ?= $(or $(VERSION),latest)
# Empty: the Dockerfile's default, the official python:3.11-slim-bookworm pinned by digest.
BASE_IMAGE ?=
# The debootstrap base of `make base-image`, for machines that reach no container registry.
LOCAL_BASE_IMAGE ?= $(IMAGE_PREFIX)/base:bookworm-py311
# 1: build on LOCAL_BASE_IMAGE (made if missing); 0: on BASE_IMAGE or the default; auto: the default when it is
# here or can be pulled, else LOCAL_BASE_IMAGE. A BASE_IMAGE given explicitly always wins.
USE_LOCAL_BASE ?= auto
# wheelhouse: dependencies downloaded on this host (its pip, proxy and CA) into WHEELHOUSE, installed in the
# build with no network; index: pip in the build downloads them (EXTRA_CA: a PEM CA to trust there).
PIP_SOURCE ?= wheelhouse
WHEELHOUSE ?= wheelhouse
EXTRA_CA ?=
DOCKER ?= docker
DOCKER_BUILD_FLAGS ?=
# Extra flags for every `docker run` of the run targets (e.g. --cpus 2, -e TF_NUM_INTRAOP_THREADS=2).
DOCKER_FLAGS ?=
# Containers run as the caller, so files in OUTPUT_DIR (and a synthesized DATA_DIR) belong to them.
DOCKER_USER ?= $(shell id -u):$(shell id -g)
GPU_FLAGS ?= --gpus all
# Extra arguments of `shadownet tfrecords` / `shadownet train` in the run targets.
TFRECORDS_ARGS ?=
TRAIN_ARGS ?=
# make train-local: SageMaker's /opt/ml on local folders; its hyperparameters, all strings as SageMaker passes them
# (empty: CONFIG with MODEL / TRAIN_STEPS, converted by the CPU image)
SM_DIR ?= $(OUTPUT_DIR)/opt_ml
SM_HYPERPARAMETERS ?=
# make push: REGISTRY=host[:port]/namespace; the images go to PUSH_PREFIX/NAME:TAG, their digests to IMAGES_FILE
REGISTRY ?=
PUSH_PREFIX ?= $(REGISTRY)/shadownet
IMAGES_FILE ?= $(OUTPUT_DIR)/images.json
# make submit
PLATFORM ?= sagemaker
SUBMIT_ARGS ?=
# The classic builder (Debian's docker.io has no BuildKit); the Dockerfile uses nothing BuildKit-only.
export DOCKER_BUILDKIT ?= 0

BIN := $(VENV)/bin
SHADOWNET := $(BIN)/shadownet
STAMP := $(VENV)/.installed
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed
# The SageMaker Python SDK (v2), in a venv of its own, for tests/test_sagemaker_sdk.py (local mode)
SDK_VENV ?= .venv-sagemaker
SDK_STAMP := $(SDK_VENV)/.installed
TFRECORDS_IMAGE := $(IMAGE_PREFIX)/tfrecords:$(TAG)
CPU_IMAGE := $(IMAGE_PREFIX)/train-cpu:$(TAG)
GPU_IMAGE := $(IMAGE_PREFIX)/train-gpu:$(TAG)
REVISION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
CREATED := $(shell git log -1 --format=%cI 2>/dev/null || echo unknown)
DOCKER_RUN = $(DOCKER) run --rm --init --network host --user $(DOCKER_USER) $(DOCKER_FLAGS)
OUTPUT_MOUNT = -v $(abspath $(OUTPUT_DIR)):/data/output
# CONFIG's folder, read-only, for the containers; the flags that override it
CONFIG_MOUNT = -v $(abspath $(dir $(CONFIG))):/data/configs:ro
IMAGE_CONFIG = /data/configs/$(notdir $(CONFIG))
OVERRIDES = $(if $(MODEL),--model $(MODEL)) $(if $(TRAIN_STEPS),--train-steps $(TRAIN_STEPS))
LOCK = UV_NATIVE_TLS=1 $(TOOLS)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command 'make lock' $(LOCK_FLAGS)

.PHONY: help venv sagemaker-sdk sample demo docs test test-fast test-gpu-image bench bench-train bench-accuracy bench-finetune bench-worker-loss bench-export bench-serve pretrain lint lock clean clean-docker \
	base-image build build-tfrecords build-cpu build-gpu push push-tfrecords push-cpu push-gpu tfrecords train train-gpu evaluate export serve train-local submit

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables (make VAR=value): DATA_DIR=$(DATA_DIR) OUTPUT_DIR=$(OUTPUT_DIR) IMAGE_PREFIX=$(IMAGE_PREFIX)"
	@echo "  TAG=$(TAG) BASE_IMAGE=$(BASE_IMAGE) USE_LOCAL_BASE=$(USE_LOCAL_BASE) PIP_SOURCE=$(PIP_SOURCE)"
	@echo "  EXTRA_CA=$(EXTRA_CA) DOCKER=$(DOCKER) DOCKER_FLAGS=$(DOCKER_FLAGS) DOCKER_USER=$(DOCKER_USER)"
	@echo "  CONFIG=$(CONFIG) TRAIN_STEPS=$(TRAIN_STEPS) MODEL=$(MODEL) TRAIN_ARGS=$(TRAIN_ARGS)"

# The venv installs the locked versions of the training image first (requirements/dev.txt), so that tests
# on the host run what the images run; the second install adds anything pyproject.toml gained since.
$(STAMP): pyproject.toml requirements/dev.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "shadownet needs Python 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes --only-binary=:all: -r requirements/dev.txt
	$(BIN)/pip install --quiet -e '.[tf,serve,dev]'
	touch $@

venv: $(STAMP) ## create .venv with shadownet, TensorFlow (CPU) and the test tools

# Its own venv: the SDK's pins (numpy, pandas, protobuf) are not the training image's. Used by a test only.
$(SDK_STAMP): requirements/sagemaker-sdk.txt
	$(PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/pip install --quiet --require-hashes --only-binary=:all: -r requirements/sagemaker-sdk.txt
	touch $@

sagemaker-sdk: $(SDK_STAMP) ## create .venv-sagemaker: the SageMaker Python SDK v2, for its local-mode test

# With a venv the sample is made there; without one (a machine with Docker only) in the generation image.
$(DATA_DIR)/Train/sample.txt:
	if [ -x $(SHADOWNET) ]; then \
		$(SHADOWNET) synth --out $(DATA_DIR) --count $(DEMO_COUNT) --kind $(DEMO_KIND) --seed $(SEED); \
	else \
		mkdir -p $(DATA_DIR); \
		$(DOCKER_RUN) -v $(abspath $(DATA_DIR)):/data/data $(TFRECORDS_IMAGE) \
			synth --out /data/data --count $(DEMO_COUNT) --kind $(DEMO_KIND) --seed $(SEED); \
	fi

sample: $(STAMP) $(DATA_DIR)/Train/sample.txt ## generate the small synthetic sample dataset in DATA_DIR (seeded)

demo: $(STAMP) sample ## the whole job on the sample: validate, TFRecords, train, evaluate, export, predict
	$(SHADOWNET) validate --dataset-dir $(DATA_DIR) --report $(OUTPUT_DIR)/validation.json
	$(SHADOWNET) tfrecords --dataset-dir $(DATA_DIR) --save-dir $(OUTPUT_DIR)/records --seed $(SEED)
	$(SHADOWNET) inspect --tfrecords-dir $(OUTPUT_DIR)/records
	$(SHADOWNET) train --tfrecords-dir $(OUTPUT_DIR)/records --model-dir $(MODEL_DIR) --config $(CONFIG) \
		$(OVERRIDES) $(TRAIN_ARGS)
	$(SHADOWNET) evaluate --tfrecords-dir $(OUTPUT_DIR)/records --model-dir $(MODEL_DIR) \
		--report $(OUTPUT_DIR)/evaluation.json
	rm -rf $(EXPORT_DIR)
	$(SHADOWNET) export --model-dir $(MODEL_DIR) --export-dir $(EXPORT_DIR)
	$(SHADOWNET) predict --model $(EXPORT_DIR)/shadownet --json \
		$$(sed -n '1,2s/ .*//p' $(DATA_DIR)/Test/sample.txt | sed 's|^/||; s|^|$(DATA_DIR)/|')

# tests/test_docker.py uses the images named by these variables (built beforehand: make build-tfrecords build-cpu);
# tests/test_sagemaker_sdk.py the SDK in SDK_VENV (make sagemaker-sdk, as .ci/run does).
PYTEST_ENV = IMAGE_PREFIX=$(IMAGE_PREFIX) TAG=$(TAG) DOCKER=$(DOCKER) \
	SAGEMAKER_SDK_PYTHON=$(abspath $(SDK_VENV))/bin/python

# Two passes: the modules in TEST_WORKERS processes (pytest-xdist; each module on one), then those marked serial
# (tests/conftest.py's SERIAL_MODULES) alone.
TEST_WORKERS ?= 2

test: $(STAMP) ## run every test, the slow end-to-end ones included (the image tests use the built images)
	$(PYTEST_ENV) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m 'not serial' $(PYTEST_ARGS)
	$(PYTEST_ENV) $(BIN)/python -m pytest -m serial $(PYTEST_ARGS)

test-fast: $(STAMP) ## the tests without the slow ones
	$(PYTEST_ENV) $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m 'not slow' $(PYTEST_ARGS)

test-gpu-image: $(STAMP) build-gpu ## build the GPU image and run its tests (CI runs them in `make test` when it builds the GPU image)
	$(PYTEST_ENV) SHADOWNET_TEST_GPU_IMAGE=1 $(BIN)/python -m pytest tests/test_docker.py -k gpu $(PYTEST_ARGS)

bench: $(STAMP) ## benchmarks/tfrecords.py: 10k images, memory at 100k (several minutes)
	$(BIN)/python benchmarks/tfrecords.py --count 10000 --rss-count 100000

bench-train: $(STAMP) ## benchmarks/train.py: training, input pipeline and serving speed
	$(BIN)/python benchmarks/train.py

bench-worker-loss: $(STAMP) ## benchmarks/worker_loss.py: how soon a worker notices that the other one died or froze
	$(BIN)/python benchmarks/worker_loss.py $(BENCH_ARGS)

bench-serve: $(STAMP) ## benchmarks/serve.py: load on `serve` in the CPU image, 1-32 clients, with and without batching
	$(BIN)/python benchmarks/serve.py --image $(CPU_IMAGE) $(BENCH_ARGS)

bench-export: $(STAMP) ## benchmarks/export.py: SavedModel vs ONNX exports of MODEL_DIR, read over OUTPUT_DIR/records' test split
	$(BIN)/python benchmarks/export.py --model-dir $(MODEL_DIR) --tfrecords-dir $(OUTPUT_DIR)/records

bench-accuracy: $(STAMP) ## benchmarks/accuracy.py: default settings, 15 min each, on 3 datasets shadownet did not make
	$(BIN)/pip install --quiet -r benchmarks/requirements-accuracy.txt
	$(BIN)/pip install --quiet --no-deps -r benchmarks/requirements-peers.txt
	$(BIN)/python benchmarks/accuracy.py $(BENCH_ARGS)

bench-finetune: $(STAMP) ## benchmarks/finetune.py: fine-tuning vs from scratch on 1,000 photographed mixed-case images (~30 min)
	$(BIN)/pip install --quiet -r benchmarks/requirements-accuracy.txt
	$(BIN)/python benchmarks/finetune.py $(BENCH_ARGS)

# make pretrain: the run that long-line datasets fine-tune from (train --init-from PRETRAIN_DIR/model): PRETRAIN_COUNT
# `synth --kind sentences` lines drawn in the fonts under PRETRAIN_FONT_DIRS (Debian's fonts-liberation2,
# fonts-freefont-ttf, fonts-crosextra-carlito, fonts-crosextra-caladea, fonts-urw-base35: docs/training.md), their
# records, then PRETRAIN_CONFIG. Each stage is skipped when its output is there; training resumes.
PRETRAIN_DIR ?= $(OUTPUT_DIR)/pretrain
PRETRAIN_COUNT ?= 100000
PRETRAIN_CONFIG ?= configs/pretrain.yaml
PRETRAIN_FONT_DIRS ?= /usr/share/fonts/truetype/liberation2 /usr/share/fonts/truetype/freefont \
	/usr/share/fonts/truetype/crosextra /usr/share/fonts/opentype/urw-base35
PRETRAIN_ARGS ?=

pretrain: $(STAMP) ## sentences -> records -> train with PRETRAIN_CONFIG (30 min on 2 CPU cores): PRETRAIN_DIR/model to --init-from
	[ -f $(PRETRAIN_DIR)/data/Train/sample.txt ] || $(SHADOWNET) synth --kind sentences --count $(PRETRAIN_COUNT) \
		--seed $(SEED) --out $(PRETRAIN_DIR)/data $(foreach dir,$(PRETRAIN_FONT_DIRS),--font-dir $(dir))
	[ -f $(PRETRAIN_DIR)/records/manifest.json ] || $(SHADOWNET) tfrecords --dataset-dir $(PRETRAIN_DIR)/data \
		--save-dir $(PRETRAIN_DIR)/records --validation-ratio 0.02 --seed $(SEED)
	$(SHADOWNET) train --tfrecords-dir $(PRETRAIN_DIR)/records --model-dir $(PRETRAIN_DIR)/model \
		--config $(PRETRAIN_CONFIG) $(PRETRAIN_ARGS)
	$(SHADOWNET) evaluate --tfrecords-dir $(PRETRAIN_DIR)/records --model-dir $(PRETRAIN_DIR)/model --split test \
		--report $(PRETRAIN_DIR)/evaluation-test.json

$(TOOLS_STAMP): requirements/tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --require-hashes --only-binary=:all: -r requirements/tools.txt
	touch $@

docs: $(STAMP) ## regenerate docs/training.md's settings table from code/shadownet/config.py (TrainConfig, HELP)
	$(BIN)/python -c 'import pathlib; from shadownet.config import with_settings_table as w; \
	  p = pathlib.Path("docs/training.md"); p.write_text(w(p.read_text()))'

lint: $(TOOLS_STAMP) ## hadolint on the Dockerfiles, shellcheck on the scripts, ruff (pyflakes, pycodestyle, import order, bugbear; pyproject.toml) on the code
	$(TOOLS)/bin/hadolint Dockerfiles/*.Dockerfile
	$(TOOLS)/bin/shellcheck Dockerfiles/scripts/*.sh .ci/run
	$(TOOLS)/bin/ruff check code tests benchmarks

lock: $(TOOLS_STAMP) ## regenerate the hash-locked requirements/*.txt (LOCK_FLAGS=--upgrade for newer versions)
	$(LOCK) pyproject.toml -o requirements/tfrecords.txt
	$(LOCK) --extra tf --extra onnx --extra serve pyproject.toml -o requirements/train-cpu.txt
	$(LOCK) --extra serve pyproject.toml requirements/train-gpu.in -o requirements/train-gpu.txt
	$(LOCK) --extra tf --extra onnx --extra serve --extra dev pyproject.toml -o requirements/dev.txt
	$(LOCK) requirements/build.in -o requirements/build.txt
	$(LOCK) requirements/tools.in -o requirements/tools.txt
	$(LOCK) requirements/sagemaker-sdk.in -o requirements/sagemaker-sdk.txt

base-image: ## build LOCAL_BASE_IMAGE: Debian bookworm + Python 3.11 by debootstrap (root, no registry needed)
	Dockerfiles/scripts/base-image.sh $(LOCAL_BASE_IMAGE) $(DOCKER)

# $(call docker_build,NAME,IMAGE): wheelhouse, staged context, then `docker build --target NAME` of
# Dockerfiles/shadownet.Dockerfile (one final stage per image).
define docker_build
	wheels=; if [ "$(PIP_SOURCE)" = wheelhouse ]; then wheels=$(WHEELHOUSE)/$(1); \
		Dockerfiles/scripts/wheelhouse.sh $$wheels requirements/$(1).txt requirements/build.txt; fi; \
	Dockerfiles/scripts/context.sh build/docker/$(1) requirements/$(1).txt "$$wheels" "$(EXTRA_CA)"
	base=$$(Dockerfiles/scripts/resolve-base.sh "$(BASE_IMAGE)" "$(USE_LOCAL_BASE)" "$(LOCAL_BASE_IMAGE)" \
		Dockerfiles/shadownet.Dockerfile $(DOCKER)); \
	echo "building $(2) on $$base"; \
	$(DOCKER) build --network host --force-rm -f Dockerfiles/shadownet.Dockerfile --target $(1) -t $(2) \
		--build-arg BASE_IMAGE="$$base" --build-arg PIP_SOURCE=$(PIP_SOURCE) --build-arg VERSION=$(VERSION) \
		--build-arg REVISION=$(REVISION) --build-arg CREATED=$(CREATED) $(DOCKER_BUILD_FLAGS) build/docker/$(1)
	@$(DOCKER) image ls $(2)
endef

build: build-tfrecords build-cpu build-gpu ## build the three images

build-tfrecords: ## build the generation image (no TensorFlow)
	$(call docker_build,tfrecords,$(TFRECORDS_IMAGE))

build-cpu: ## build the CPU training image
	$(call docker_build,train-cpu,$(CPU_IMAGE))

build-gpu: ## build the GPU training image (several GB of CUDA wheels)
	$(call docker_build,train-gpu,$(GPU_IMAGE))

# $(call docker_push,NAME=IMAGE ...): tag, push, print the digests, record them in IMAGES_FILE.
define docker_push
	@test -n "$(REGISTRY)" || { echo "make push: set REGISTRY=host[:port]/namespace (and log in first: docs/docker.md)" >&2; exit 2; }
	Dockerfiles/scripts/push.sh $(DOCKER) $(PUSH_PREFIX) $(TAG) $(IMAGES_FILE) $(1)
endef

push: ## push the three images to REGISTRY (TAG=...), their digests to OUTPUT_DIR/images.json
	$(call docker_push,tfrecords=$(TFRECORDS_IMAGE) train-cpu=$(CPU_IMAGE) train-gpu=$(GPU_IMAGE))

push-tfrecords: ## push the generation image
	$(call docker_push,tfrecords=$(TFRECORDS_IMAGE))

push-cpu: ## push the CPU training image
	$(call docker_push,train-cpu=$(CPU_IMAGE))

push-gpu: ## push the GPU training image
	$(call docker_push,train-gpu=$(GPU_IMAGE))

tfrecords: $(DATA_DIR)/Train/sample.txt ## generation image: DATA_DIR (read-only) -> OUTPUT_DIR/records
	mkdir -p $(OUTPUT_DIR)
	$(DOCKER_RUN) -v $(abspath $(DATA_DIR)):/data/data:ro $(OUTPUT_MOUNT) $(TFRECORDS_IMAGE) \
		tfrecords --dataset-dir /data/data --save-dir /data/output/records --seed $(SEED) $(TFRECORDS_ARGS)

train: ## CPU image: train with CONFIG on OUTPUT_DIR/records -> OUTPUT_DIR/model (resumes)
	$(DOCKER_RUN) $(OUTPUT_MOUNT) $(CONFIG_MOUNT) $(CPU_IMAGE) train --tfrecords-dir /data/output/records \
		--model-dir /data/output/model --config $(IMAGE_CONFIG) $(OVERRIDES) $(TRAIN_ARGS)

train-gpu: ## the same in the GPU image, with GPU_FLAGS (--gpus all: needs the NVIDIA container toolkit)
	$(DOCKER_RUN) $(GPU_FLAGS) $(OUTPUT_MOUNT) $(CONFIG_MOUNT) $(GPU_IMAGE) train --tfrecords-dir /data/output/records \
		--model-dir /data/output/model --config $(IMAGE_CONFIG) $(OVERRIDES) $(TRAIN_ARGS)

evaluate: ## CPU image: evaluate OUTPUT_DIR/model on the test split -> OUTPUT_DIR/evaluation.json and .png
	$(DOCKER_RUN) $(OUTPUT_MOUNT) $(CPU_IMAGE) evaluate --tfrecords-dir /data/output/records \
		--model-dir /data/output/model --report /data/output/evaluation.json

export: ## CPU image: export OUTPUT_DIR/model for TF Serving -> OUTPUT_DIR/export/shadownet/VERSION
	$(DOCKER_RUN) $(OUTPUT_MOUNT) $(CPU_IMAGE) export --model-dir /data/output/model \
		--export-dir /data/output/export

# make serve: the port on this host; the CPU image reads OUTPUT_DIR/export as SageMaker hosting's /opt/ml/model
SERVE_PORT ?= 8080
SERVE_ARGS ?=
serve: ## CPU image: serve OUTPUT_DIR/export on port SERVE_PORT (SageMaker, Vertex AI, KServe, TF Serving REST routes)
	$(DOCKER_RUN) -v $(abspath $(EXPORT_DIR)):/opt/ml/model:ro $(CPU_IMAGE) serve --port $(SERVE_PORT) $(SERVE_ARGS)

train-local: ## CPU image exactly as SageMaker runs it: OUTPUT_DIR/opt_ml as /opt/ml, channel train = OUTPUT_DIR/records
	mkdir -p $(SM_DIR)/input/config $(SM_DIR)/input/data $(SM_DIR)/model $(SM_DIR)/output $(SM_DIR)/checkpoints
	$(if $(SM_HYPERPARAMETERS),printf '%s\n' '$(SM_HYPERPARAMETERS)',$(DOCKER_RUN) $(CONFIG_MOUNT) --entrypoint python \
		$(CPU_IMAGE) -m shadownet.config $(IMAGE_CONFIG) $(if $(MODEL),model=$(MODEL)) \
		$(if $(TRAIN_STEPS),train_steps=$(TRAIN_STEPS))) > $(SM_DIR)/input/config/hyperparameters.json
	rm -rf $(SM_DIR)/input/data/train && cp -r $(OUTPUT_DIR)/records $(SM_DIR)/input/data/train
	$(DOCKER_RUN) -v $(abspath $(SM_DIR)):/opt/ml $(CPU_IMAGE) train

submit: $(STAMP) ## shadownet submit --platform PLATFORM SUBMIT_ARGS (e.g. SUBMIT_ARGS="--set bucket=my-bucket")
	$(SHADOWNET) submit --platform $(PLATFORM) $(SUBMIT_ARGS)

clean: ## remove generated data, outputs and staged build contexts (keeps .venv and the wheelhouse)
	rm -rf $(OUTPUT_DIR) data/sample .pytest_cache build/docker
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

clean-docker: ## remove the wheelhouse, the staged contexts and this project's images
	rm -rf $(WHEELHOUSE) build/docker
	-$(DOCKER) image rm $(TFRECORDS_IMAGE) $(CPU_IMAGE) $(GPU_IMAGE) $(LOCAL_BASE_IMAGE) 2>/dev/null
