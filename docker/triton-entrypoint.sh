#!/usr/bin/env bash
# Entry point of the Triton image: lay out the model repository from a pack, then run tritonserver on it.
#
#   triton-entrypoint.sh [serve] [extra tritonserver args]   build the repository (unless prebuilt) and serve
#   triton-entrypoint.sh build                               only build the repository (Kubernetes init container)
#   triton-entrypoint.sh build-engines                       build, load once so every TensorRT engine is built into
#                                                            the engine cache, then exit (run on the target GPU)
#
# Environment (defaults in brackets):
#   FACE_ANALYSIS_TARGET      gpu | cpu [gpu]; cpu adds --model-config-name=cpu (ONNX models on onnxruntime, no GPU)
#   FACE_ANALYSIS_PACK        model pack name or manifest path [buffalo_l]
#   FACE_ANALYSIS_MODELS_DIR  where packs are fetched to / found [/models/packs]
#   FACE_ANALYSIS_PACK_DIR    use the pack's files from this folder instead of fetching (offline clusters)
#   FACE_ANALYSIS_REPOSITORY  the laid-out repository [/models/repository]
#   FACE_ANALYSIS_PREBUILT    1: the repository is already there (a volume), skip the build [0]
#   FACE_ANALYSIS_MAX_FACES   face cap per image [128];  FACE_ANALYSIS_CPU_THREADS  onnxruntime threads [auto]
#   TRITON_HTTP_PORT, TRITON_GRPC_PORT, TRITON_METRICS_PORT  [8000, 8001, 8002]
#   ENGINE_CACHE_ROOT         TensorRT engine cache, a volume that survives restarts [/var/cache/face-analysis/trt]
#
# TensorRT engines only load on the GPU model and TensorRT version that built them, so the cache is split per
# "<gpu name>-sm<compute capability>-trt<version>": one volume can serve a mixed fleet, and a new Triton image or
# GPU type builds fresh engines instead of failing on stale ones.
set -euo pipefail

mode=serve
case "${1:-}" in
  serve | build | build-engines) mode=$1; shift ;;
esac

target=${FACE_ANALYSIS_TARGET:-gpu}
repository=${FACE_ANALYSIS_REPOSITORY:-/models/repository}
cache_root=${ENGINE_CACHE_ROOT:-/var/cache/face-analysis/trt}
case "$target" in
  gpu | cpu) ;;
  *) echo "FACE_ANALYSIS_TARGET must be gpu or cpu, not '$target'" >&2; exit 2 ;;
esac

triton_ready() {
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$http_port/v2/health/ready', timeout=2)" \
    2>/dev/null
}

trt_version() {
  # NGC images set TRT_VERSION; otherwise read it off the library's file name.
  if [ -n "${TRT_VERSION:-}" ]; then echo "$TRT_VERSION"; return; fi
  local lib
  lib=$(find /usr/lib -name 'libnvinfer.so.*.*' 2>/dev/null | sort -V | tail -n 1 || true)
  echo "${lib##*.so.}" | grep . || echo unknown
}

engine_cache_dir() {
  local gpu
  gpu=$(nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader 2>/dev/null | head -n 1 || true)
  if [ -z "$gpu" ]; then
    echo "$cache_root/no-gpu"
    return
  fi
  local name=${gpu%,*} cap=${gpu##*,} key
  key="${name}-sm${cap// /}-trt$(trt_version)"
  key=$(echo "$key" | tr -s ' ./' '___' | tr -cd 'A-Za-z0-9_+-')
  echo "$cache_root/$key"
}

build_repository() {
  local args=(repo build --pack "${FACE_ANALYSIS_PACK:-buffalo_l}" --models-dir "${FACE_ANALYSIS_MODELS_DIR:-/models/packs}"
    --out "$repository" --max-faces "${FACE_ANALYSIS_MAX_FACES:-128}" --cpu-threads "${FACE_ANALYSIS_CPU_THREADS:-auto}")
  if [ -n "${FACE_ANALYSIS_PACK_DIR:-}" ]; then args+=(--pack-dir "$FACE_ANALYSIS_PACK_DIR"); fi
  if [ "$target" = gpu ]; then
    local cache
    cache=$(engine_cache_dir)
    mkdir -p "$cache"
    echo "TensorRT engine cache: $cache"
    args+=(--engine-cache-dir "$cache")
  fi
  face-analysis "${args[@]}"
}

http_port=${TRITON_HTTP_PORT:-8000}
# Decoded full-resolution images cross between the Python steps in shared memory: grow it in large steps (the
# container needs a /dev/shm of 1 GB or more: compose's shm_size, the chart's memory-backed emptyDir).
server_args=(--model-repository="$repository" --http-port="$http_port" --grpc-port="${TRITON_GRPC_PORT:-8001}"
  --metrics-port="${TRITON_METRICS_PORT:-8002}" --exit-on-error=true --strict-readiness=true
  "--backend-config=python,shm-default-byte-size=33554432" "--backend-config=python,shm-growth-byte-size=33554432")
if [ "$target" = cpu ]; then server_args+=(--model-config-name=cpu); fi

if [ "$mode" != serve ] || [ "${FACE_ANALYSIS_PREBUILT:-0}" != 1 ]; then
  build_repository
fi

case "$mode" in
  build) exit 0 ;;
  build-engines)
    # Model warm-up runs at load, so a ready server has built (or found) every engine for this GPU.
    tritonserver "${server_args[@]}" "$@" &
    pid=$!
    for _ in $(seq 1 "${ENGINE_BUILD_TIMEOUT_S:-1800}"); do
      if triton_ready; then
        echo "engines ready in $(engine_cache_dir)"
        kill "$pid"; wait "$pid" || true
        exit 0
      fi
      if ! kill -0 "$pid" 2>/dev/null; then echo "tritonserver exited before it was ready" >&2; exit 1; fi
      sleep 1
    done
    echo "engines not ready after ${ENGINE_BUILD_TIMEOUT_S:-1800}s" >&2
    kill "$pid"; exit 1 ;;
  serve) exec tritonserver "${server_args[@]}" "$@" ;;
esac
