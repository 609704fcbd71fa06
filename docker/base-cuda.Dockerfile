# nia-base:bookworm-cuda: the Debian base of `make base-offline` with PyPI's
# torch 1.13.1 (+cu117: CUDA 11.7 runtime, cuDNN 8.5, cuBLAS as nvidia-*
# wheels) in place of Debian's CPU-only python3-torch. No registry and no
# network: the build context is the wheel folder that `make cuda-wheels`
# filled on the host (~/.cache/nia-wheels/cuda-py3.11, outside the clone).
#
#   docker build -f docker/base-cuda.Dockerfile -t nia-base:bookworm-cuda ~/.cache/nia-wheels/cuda-py3.11
#
# Debian's python3-torch and python3-torchvision are removed (torchvision's
# compiled ops are built against Debian's libtorch and must not load beside
# PyPI's). The wheels are unpacked in a throw-away stage, so that they never
# become a layer of the base; the drivers come from the host
# (`docker run --gpus all`, NVIDIA Container Toolkit).
ARG BASE_IMAGE=nia-base:bookworm

FROM ${BASE_IMAGE} AS wheels
COPY requirements-cuda.txt *.whl /tmp/wheels/
RUN python3 -m pip install --no-index --no-deps --no-cache-dir --disable-pip-version-check \
        --no-warn-script-location --target /opt/torch-cuda -r /tmp/wheels/requirements-cuda.txt \
        --find-links /tmp/wheels

FROM ${BASE_IMAGE}
RUN dpkg --purge python3-torchvision python3-torch
COPY --from=wheels /opt/torch-cuda/ /usr/local/lib/python3.11/dist-packages/
RUN python3 -c "import torch, sys; sys.exit(0 if torch.version.cuda else 'torch has no CUDA build')"
LABEL org.opencontainers.image.title="nia-base-cuda" \
      org.opencontainers.image.description="Debian bookworm + PyPI torch with CUDA (1.13.1 + CUDA 11.7, or CUDA_STACK=current: the context's requirements-cuda.txt) + python3-opencv 4.6.0, built without a registry" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
