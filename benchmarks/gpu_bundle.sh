#!/bin/sh
# What benchmarks/gpu_check.py and benchmarks/gpu_smoke.py need on a GPU machine that has torch,
# transformers, peft, accelerate, numba and onnxruntime but no network: wheels of the rest of
# perceptok's dependencies for CPython 3.12 on x86-64 Linux, in .whl/, and a copy of the real depth
# maps (../shared/data/depth) in .gpudata/ (gpu_check's first phase). Run from the repository root;
# both folders stay out of git (.git/info/exclude). Then, on the GPU machine, from a copy of the
# repository with both folders:
#
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
#   python3 benchmarks/gpu_check.py --manifest .gpudata/depth/manifest.jsonl > gpu_check.jsonl
#   python3 benchmarks/gpu_smoke.py --budget 300 > gpu_smoke.jsonl
set -eu
for d in /.whl/ /.gpudata/; do
    grep -qx "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude
done
rm -rf .whl .gpudata
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl vector-quantize-pytorch==1.32.0 einx==0.4.3 loguru==0.7.3 torch-einops-utils==0.2.0 \
    frozendict==2.5.1 einops==0.8.2 deflate==0.9.0
mkdir -p .gpudata
cp -r ../shared/data/depth .gpudata/depth
du -sh .whl .gpudata
