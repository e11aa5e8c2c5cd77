"""Inference-time ablations of the shipped depth tokenizer's design choices, on real maps.

Each row changes one thing in how maps reach the trained network and scores the result with
``perceptok eval depth``'s metrics, so the effect of that choice is measured, not guessed:

- ``holes: constant fill``: invalid pixels filled with 0 (the original's approach) instead of
  push-pull filling;
- ``no validity channel``: the validity input set to all-valid;
- ``wide frames: squashed to 10×10``: wide synthetic frames forced into the square grid instead
  of the aspect-adaptive one (scored on held-out 128×448 outdoor scenes).

Run: ``.venv/bin/python benchmarks/depth_ablations.py ../shared/data/depth/manifest.jsonl``
"""

from __future__ import annotations

import json
import sys
from unittest import mock

import torch

import perceptok
from perceptok.depth import tokenizer as depth_tokenizer
from perceptok.depth.evaluate import evaluate_depth, lidar_like
from perceptok.depth.resample import resize
from perceptok.io import DepthMap, read_manifest
from perceptok.synthetic import render_scene

KEYS = ("abs_rel", "ordinal_acc", "ordinal_acc_3pt", "rmse_rel")
ORIGINAL_INPUT = depth_tokenizer.model_input


def constant_fill_input(rel, valid, size):
    return torch.cat([resize(rel * valid, size) * 2 - 1, resize(valid.float(), size)], dim=1)


def no_mask_input(rel, valid, size):
    x = ORIGINAL_INPUT(rel, valid, size)
    x[:, 1] = 1.0
    return x


def wide_scenes(n: int = 24) -> list[DepthMap]:
    maps = []
    for i in range(n):
        depth = torch.from_numpy(render_scene(50_000 + i, size=(128, 448), kind="outdoor").depth)
        ok = torch.isfinite(depth)
        maps.append(DepthMap(torch.where(ok, depth, torch.full_like(depth, float("nan"))), ok, "metric"))
    return maps


def row(name: str, result: dict) -> dict:
    return {"setting": name, **{k: result[k] for k in KEYS}}


def main(manifest: str) -> None:
    torch.set_num_threads(2)
    tok = perceptok.load("depth")
    real = [e.load() for e in read_manifest(manifest)]
    sparse = [lidar_like(m, seed=i) for i, m in enumerate(real)]
    rows = [row("real maps", evaluate_depth(tok, real)), row("sparse (LiDAR-like) maps", evaluate_depth(tok, sparse))]
    for name, replacement in (("constant fill", constant_fill_input), ("no validity channel", no_mask_input)):
        with mock.patch.object(depth_tokenizer, "model_input", replacement):
            rows.append(row(f"sparse, {name}", evaluate_depth(tok, sparse)))
    wide = wide_scenes()
    rows.append(row("wide 128×448 frames, adaptive 5×20 grid", evaluate_depth(tok, wide)))
    with mock.patch.object(type(tok.config), "choose_grid", lambda self, h, w: (10, 10)):
        rows.append(row("wide 128×448 frames, squashed to 10×10", evaluate_depth(tok, wide)))
    pooled = perceptok.load("depth:pooled")
    rows.append(row("pooled baseline, wide frames", evaluate_depth(pooled, wide)))
    rows.append(row("pooled baseline, sparse maps", evaluate_depth(pooled, sparse)))
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main(sys.argv[1])
