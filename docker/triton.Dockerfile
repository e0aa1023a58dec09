# syntax=docker/dockerfile:1
# Triton with the face_analysis ensemble: NVIDIA's tritonserver image plus what the Python steps and the repository
# build import. Build from the repository root:
#   docker build -f docker/triton.Dockerfile -t ghcr.io/face-analysis/triton:0.1.0 .
# The model repository is laid out from a pack when the container starts (docker/triton-entrypoint.sh): weights
# are never baked into the image. 24.10 is Triton 2.51, the version the embedded CPU server of the tests runs.
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3
FROM ${TRITON_IMAGE}

# Newer NGC images (Ubuntu 24.04) mark the system Python as externally managed; this image is that Python's only user.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_BREAK_SYSTEM_PACKAGES=1 PYTHONUNBUFFERED=1
WORKDIR /opt/face-analysis/src
COPY pyproject.toml README.md ./
COPY face_analysis ./face_analysis
COPY control_plane ./control_plane
# The core dependencies only (numpy<2 for the Python-backend stub, opencv-python-headless, pillow, onnx,
# onnxruntime for the CPU target and the build's batch checks, tritonclient for the config protobufs).
RUN python3 -m pip install . && python3 -c "import numpy; assert numpy.__version__ < '2'"

COPY --chmod=0755 docker/triton-entrypoint.sh /usr/local/bin/triton-entrypoint.sh
# Packs, the laid-out repository and the TensorRT engine cache are volumes (compose) or mounts (Helm).
RUN install -d -o 1000 -g 1000 /models /models/packs /models/repository /var/cache/face-analysis/trt
VOLUME ["/models/packs", "/var/cache/face-analysis/trt"]
# The NGC image's unprivileged user.
USER 1000:1000
WORKDIR /models
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=15s --timeout=5s --start-period=600s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=3)"]
ENTRYPOINT ["/usr/local/bin/triton-entrypoint.sh"]
CMD ["serve"]
