# shadownet generation image: `shadownet tfrecords` (and synth, validate, charset). The record writer needs no
# TensorFlow, so none is installed. Build with `make build-tfrecords`: the build context is the folder that
# Dockerfiles/scripts/context.sh stages, not the repository (see docs/docker.md).
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

FROM ${BASE_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# No USER: the image starts as root, which is how SageMaker (training and hosting) and UAI Train run it and
# what their root-owned /opt/ml and /data folders need. Everywhere else the caller chooses the unprivileged
# user: our Kubernetes specs run it as 10001 (the restricted Pod Security Standard), `make tfrecords` and any
# `docker run --user UID:GID` as that UID. Why not start as root and drop privileges: docs/docker.md.
# Nothing is written outside /tmp and the mounts, whoever runs it.
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
LABEL org.opencontainers.image.title="shadownet-tfrecords" \
      org.opencontainers.image.description="shadownet TFRecord generation (no TensorFlow): shadownet tfrecords --dataset-dir /data/data --save-dir /data/output/records" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

ENTRYPOINT ["shadownet"]
CMD ["--help"]
