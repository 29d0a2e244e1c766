#!/usr/bin/env bash
# Runs in the build stage of every image, from the build context that context.sh stages in /ctx:
#   install.sh deps      the hash-locked requirements into the venv /opt/venv (build tools into /opt/build)
#   install.sh package   shadownet itself, built from /ctx/src with the locked setuptools, no network
#
# PIP_SOURCE=wheelhouse (default): no network at all; every file comes from /ctx/wheels (downloaded on the host
#   by wheelhouse.sh) and its hash is checked again here. PIP_SOURCE=index: from the package index
#   (PIP_INDEX_URL if set); a TLS-intercepting proxy's CA can be added as /ctx/ca/*.crt, trusted in this
#   build stage only (the final image copies /opt/venv and nothing else).
set -euo pipefail

ctx=/ctx
pip_args=(--quiet --no-cache-dir --disable-pip-version-check)

case ${1:-} in
  deps)
    pip_args+=(--require-hashes --only-binary=:all:)
    case ${PIP_SOURCE:-wheelhouse} in
      wheelhouse) pip_args+=(--no-index --find-links "$ctx/wheels") ;;
      index) ;;
      *) echo "install.sh: PIP_SOURCE must be wheelhouse or index, not '$PIP_SOURCE'" >&2; exit 2 ;;
    esac
    if compgen -G "$ctx/ca/*.crt" >/dev/null; then
      # pip then trusts this bundle only: the system roots plus the extra CA(s).
      cat /etc/ssl/certs/ca-certificates.crt "$ctx"/ca/*.crt > /tmp/pip-ca-bundle.crt
      export PIP_CERT=/tmp/pip-ca-bundle.crt
    fi
    # /opt/venv gets no pip or setuptools of its own (unless a locked requirement needs them):
    # the build venv's pip installs into it with --python.
    python3 -m venv /opt/build
    /opt/build/bin/pip install "${pip_args[@]}" -r "$ctx/build-requirements.txt"
    python3 -m venv --without-pip /opt/venv
    /opt/build/bin/pip --python /opt/venv/bin/python install "${pip_args[@]}" -r "$ctx/requirements.txt"
    rm -f /tmp/pip-ca-bundle.crt
    # Two parts of TensorFlow's install that only serve building against it, left out for the CPU image's
    # 1.6 GB goal: its C++ headers (~290 MB, for compiling custom ops) and libclang (~60 MB; TensorFlow's
    # Python code never imports it). The image tests import TensorFlow and train with what remains.
    rm -rf /opt/venv/lib/python3.*/site-packages/tensorflow/include
    if /opt/venv/bin/python -c 'import clang' 2>/dev/null; then
      /opt/build/bin/pip --python /opt/venv/bin/python uninstall --quiet --yes libclang
    fi
    # Likewise setuptools (~8 MB), which TensorBoard requires and nothing here imports at run time (the
    # shadownet wheel is built by the build venv's).
    if /opt/venv/bin/python -c 'import setuptools' 2>/dev/null; then
      /opt/build/bin/pip --python /opt/venv/bin/python uninstall --quiet --yes setuptools
    fi
    # boto3 is here for s3:// paths, and botocore carries the API models of every AWS service (~28 MB, most
    # of the generation image's margin under its 400 MB goal). Keep S3's and those of the services its
    # credential providers call (STS, SSO, SSO-OIDC, sign-in); the image tests create each client and talk
    # to an S3 server.
    # The ONNX extra (CPU image) adds ~118 MB; these parts of it and of TensorFlow no stage loads (the image
    # tests train, export to ONNX with int8 quantisation and predict with all three models without them):
    # onnx's conformance test data and C++ sources, a stray top-level `tests` package that tf2onnx installs,
    # TensorFlow's StableHLO extension, and TensorBoard's fast-loading server binary (TensorBoard falls back
    # to its Python loader; training writes summaries with TensorFlow itself).
    site=$(echo /opt/venv/lib/python3.*/site-packages)
    rm -rf "$site/onnx/backend/test" "$site/tests" "$site/tensorboard_data_server" \
      "$site"/tensorflow/compiler/mlir/stablehlo/stablehlo_extension*.so
    # The serve extra (aiohttp, prometheus-client, google-cloud-storage and google-auth's cryptography) adds
    # ~45 MB; the test suites that numpy, h5py, Keras, TensorFlow and others ship (~30 MB) go instead: nothing
    # imports them.
    find "$site" -depth -type d -name tests \( -path '*/numpy/*' -o -path '*/h5py/*' -o -path '*/keras/*' \
      -o -path '*/tensorflow/*' -o -path '*/opt_einsum/*' -o -path '*/certifi/*' \) -exec rm -rf {} +
    find "$site/keras" "$site/tensorflow" "$site/tf2onnx" \( -name '*_test.py' -o -name '*_test.cpython-*.pyc' \) \
      -delete 2>/dev/null || true
    if [[ -d $site/onnx ]]; then
      find "$site/onnx" \( -name '*.cc' -o -name '*.h' -o -name '*.in.proto' \) -delete
    fi
    for data in /opt/venv/lib/python3.*/site-packages/botocore/data; do
      find "$data" -mindepth 1 -maxdepth 1 -type d \
        ! -name s3 ! -name sts ! -name sso ! -name sso-oidc ! -name signin -exec rm -rf {} +
    done
    ;;
  package)
    /opt/build/bin/pip wheel "${pip_args[@]}" --no-deps --no-build-isolation --no-index \
      --wheel-dir /tmp/dist "$ctx/src"
    /opt/build/bin/pip --python /opt/venv/bin/python install "${pip_args[@]}" --no-deps --no-index \
      /tmp/dist/shadownet-*.whl
    /opt/venv/bin/shadownet --version
    ;;
  *) echo "usage: install.sh deps|package" >&2; exit 2 ;;
esac
