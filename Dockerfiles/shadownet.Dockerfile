# The three shadownet images, one final stage each, chosen with `docker build --target NAME`:
#   tfrecords  `shadownet tfrecords` (and synth, validate, charset); no TensorFlow
#   train-cpu  `shadownet train`, `evaluate`, `export`, `predict`, `inspect` on tensorflow-cpu;
#              `<image> train --tfrecords-dir ... --model-dir ...` is also how cloud platforms start it
#   train-gpu  the same on NVIDIA GPUs (tensorflow[and-cuda]: NVIDIA's CUDA 12 and cuDNN 9 wheels); the host
#              needs only the NVIDIA driver and the NVIDIA container toolkit (`docker run --gpus all`)
# Build with `make build-tfrecords`, `build-cpu`, `build-gpu`: the build context is the folder that
# Dockerfiles/scripts/context.sh stages for that image (requirements/NAME.txt and its wheels), not the
# repository (see docs/docker.md). The images differ only in that context and in their final stage.
#
# Default base: the official python:3.11-slim-bookworm (Python 3.11.16), pinned to the digest of its
# multi-platform index. Where it came from: public projects that pin that tag to this digest, one recording it
# as read from Docker Hub's tag API on 2026-09-21, another as resolved on 2026-10-01 (no registry is reachable
# from our machines to check it again: `docker buildx imagetools inspect python:3.11-slim-bookworm` shows the
# current one). Where no registry is reachable, `make base-image` builds an equivalent from Debian packages.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

FROM ${BASE_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# wheelhouse: offline, from wheels/ in the context; index: from the package index (see install.sh)
ARG PIP_SOURCE=wheelhouse
COPY scripts/install.sh /ctx/
COPY requirements.txt build-requirements.txt /ctx/
COPY ca/ /ctx/ca/
COPY wheels/ /ctx/wheels/
RUN PIP_SOURCE="${PIP_SOURCE}" /ctx/install.sh deps
# The code last: editing it rebuilds only this layer.
COPY src/ /ctx/src/
RUN /ctx/install.sh package

# What the three images share; not an image of its own.
FROM ${BASE_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# No USER: the image starts as root, which is how SageMaker (training and hosting) and UAI Train run it and
# what their root-owned /opt/ml and /data folders need. Everywhere else the caller chooses the unprivileged
# user: our Kubernetes specs run it as 10001 (the restricted Pod Security Standard), `make tfrecords`,
# `make train` and any `docker run --user UID:GID` as that UID. Why not start as root and drop privileges:
# docs/docker.md. Nothing is written outside /tmp and the mounts, whoever runs it.
RUN groupadd --gid 10001 shadownet \
    && useradd --uid 10001 --gid 10001 --no-log-init --create-home --shell /usr/sbin/nologin shadownet \
    && mkdir -p /data/data /data/output \
    && chmod 1777 /data /data/output
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    XDG_CACHE_HOME=/tmp/.cache
WORKDIR /data

ARG BASE_IMAGE
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

ENTRYPOINT ["shadownet"]
CMD ["--help"]

# The classic builder (DOCKER_BUILDKIT=0) also builds the stages above the target; these are metadata only.
FROM runtime AS tfrecords
LABEL org.opencontainers.image.title="shadownet-tfrecords" \
      org.opencontainers.image.description="shadownet TFRecord generation (no TensorFlow): shadownet tfrecords --dataset-dir /data/data --save-dir /data/output/records"

FROM runtime AS train-cpu
# Keras's config and downloads in /tmp, also as root (its default is ~/.keras).
ENV KERAS_HOME=/tmp/.keras
# `IMAGE serve`: SageMaker hosting's and KServe's port (Vertex AI sets AIP_HTTP_PORT; docs/serving.md)
EXPOSE 8080
LABEL org.opencontainers.image.title="shadownet-train-cpu" \
      org.opencontainers.image.description="shadownet training, evaluation, export and serving on CPU (TensorFlow): shadownet train --tfrecords-dir DIR --model-dir DIR; shadownet serve"

FROM runtime AS train-gpu
# As in NVIDIA's CUDA images: what the NVIDIA container runtime exposes when it starts the image without
# --gpus (every GPU; the driver's CUDA libraries and nvidia-smi).
ENV KERAS_HOME=/tmp/.keras \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
EXPOSE 8080
LABEL org.opencontainers.image.title="shadownet-train-gpu" \
      org.opencontainers.image.description="shadownet training, evaluation, export and serving on NVIDIA GPUs (TensorFlow, CUDA 12, cuDNN 9): shadownet train --tfrecords-dir DIR --model-dir DIR; shadownet serve"
