"""GPU check of the depth tokenizer, one prepared run for a lent GPU (about 5 minutes on an H100):

1. encode / decode / decode_soft of the 21 real maps on CUDA in fp32 and bf16: ids equal to the
   CPU's (fraction), maps and soft maps finite and on the GPU;
2. ``perceptok bench tokenize`` on CUDA: 4,096 640×480 16-bit PNG files to token shards in batches
   of 32 with 0, 1 and 16 DataLoader workers beside the obvious per-file loop (the loop and the
   stages of one pass timed on 128 files; the issue-9 goal: ≥ 2,000 maps/s; a run's start, forking
   16 workers and their first batches, is about a quarter second, so fewer files would measure it);
3. ``perceptok bench depth --device cuda --json`` in fp32 and bf16;
4. a 1-minute training run on CUDA (steps, maps/s, last validation).

Prints one JSON line per phase. Needs ``../shared/data`` beside the repository for phase 1 (or
``--manifest``). ``--device cpu --quick`` runs the same code on a CPU in seconds (a test does).

    python benchmarks/gpu_check.py                    # on the GPU machine
    python benchmarks/gpu_check.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import perceptok
from perceptok.depth import PRESETS
from perceptok.depth.bench import BenchConfig, bench_depth
from perceptok.depth.train import TrainConfig, train_depth
from perceptok.io import read_manifest
from perceptok.shards.bench import bench_tokenize

ROOT = Path(__file__).resolve().parents[1]


STARTED = time.perf_counter()


def emit(phase: str, **values) -> None:
    """One JSON line, with the seconds since the start (to plan the next device run)."""
    print(json.dumps({"phase": phase, "at_s": round(time.perf_counter() - STARTED, 1), **values}), flush=True)


def check_tokenizer(device: str, manifest: Path) -> None:
    maps = [e.load() for e in read_manifest(manifest)]
    cpu = perceptok.load("depth")
    reference = cpu.encode(maps).ids
    for dtype in (torch.float32, torch.bfloat16):
        tok = perceptok.load("depth").to(device, dtype)
        on_device = [type(m)(m.values.to(device), m.valid.to(device), m.kind, m.path) for m in maps]
        started = time.perf_counter()
        enc = tok.encode(on_device)
        restored = tok.decode(enc.ids, stats=enc.stats)
        soft = tok.decode_soft(torch.nn.functional.one_hot(enc.ids, tok.vocab_size).to(device, dtype))
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        emit("tokenizer", device=device, dtype=str(dtype), maps=len(maps),
             ids_equal_to_cpu_fp32=round(float((enc.ids.cpu() == reference).float().mean()), 5),
             ids_device=str(enc.ids.device), restored_finite=all(bool(torch.isfinite(r).all()) for r in restored),
             soft_finite=bool(torch.isfinite(soft.float()).all()), seconds=round(time.perf_counter() - started, 3))


def phase(name: str, fn, *args, **kwargs) -> None:
    """Run one phase; where it fails, print its error and go on (one broken phase on a lent GPU must
    not cost the figures of the others)."""
    try:
        fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - reported, and the run goes on
        emit(name, error=f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")


def bench(device: str, dtype: str, quick: bool) -> None:
    cfg = BenchConfig(device=device, dtype=dtype, batch_sizes=(1, 64) if quick else (1, 64, 1024),
                      round_trip_batch=4 if quick else 64, train_batch=8 if quick else 1024,
                      scenes=4 if quick else 64, seconds=0.01 if quick else 0.5, repeats=1 if quick else 3)
    emit("bench", **bench_depth(cfg))


def train(minutes: float, quick: bool) -> None:
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(out=out, data=["synthetic:16" if quick else "synthetic:1000"], steps=1_000_000,
                          minutes=minutes, batch_size=8 if quick else 1024, eval_every=10**9,
                          val_scenes=4 if quick else 64)  # the device: CUDA where there is one
        started = time.perf_counter()
        result = train_depth(PRESETS["default"], cfg, progress=False)
        elapsed = time.perf_counter() - started
        emit("train", minutes=minutes, steps=result.steps, batch=cfg.batch_size, seconds=round(elapsed, 1),
             maps_per_s=round(result.steps * cfg.batch_size / elapsed, 1), metrics=result.metrics)


def tokenize(device: str, quick: bool) -> None:
    emit("tokenize", **bench_tokenize(files=16 if quick else 4096, workers=2 if quick else 16, batch_size=8 if quick else 32,
                                      device=device, repeats=1, loop_files=8 if quick else 128))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--manifest", type=Path, default=ROOT.parent / "shared" / "data" / "depth" / "manifest.jsonl")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of the same code")
    parser.add_argument("--train-minutes", type=float, default=1.0)
    args = parser.parse_args()
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run it on the GPU machine or pass --device cpu", file=sys.stderr)
        return 2
    emit("machine", device=args.device, torch=torch.__version__,
         gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    if args.manifest.exists():
        phase("tokenizer", check_tokenizer, args.device, args.manifest)
    else:
        emit("tokenizer", skipped=f"{args.manifest} is absent")
    phase("tokenize", tokenize, args.device, args.quick)  # the open goal first
    for dtype in ("fp32", "bf16"):
        phase("bench", bench, args.device, dtype, args.quick)
    phase("train", train, 0.05 if args.quick else args.train_minutes, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
