"""``perceptok eval depth``: a tokenizer's reconstruction quality and speed on real maps."""

from __future__ import annotations

import time

import torch

from perceptok.depth.metrics import codebook_stats, map_errors, nearest_of_k_accuracy, ordinal_accuracy
from perceptok.depth.normalize import normalize_depth, to_inverse
from perceptok.depth.grid import GridDepthTokenizer
from perceptok.io.depth_files import DepthMap


def lidar_like(depth: DepthMap, row_step: int = 4, keep: float = 0.8, seed: int = 0) -> DepthMap:
    """The same map measured like a sparse scanner: every ``row_step``-th row, ``keep`` of the
    columns (about 20 % of the pixels with the defaults)."""
    g = torch.Generator().manual_seed(seed)
    h, w = depth.values.shape
    rows = torch.arange(h) % row_step == 0
    cols = torch.rand(w, generator=g) < keep
    valid = depth.valid & rows[:, None] & cols[None, :]
    return DepthMap(torch.where(valid, depth.values, torch.full_like(depth.values, float("nan"))), valid,
                    depth.kind, depth.path)


def evaluate_depth(tok: GridDepthTokenizer, maps: list[DepthMap], seed: int = 0) -> dict[str, float]:
    """Metrics of ``perceptok.depth.metrics`` averaged over ``maps`` (ordinal accuracies pooled
    over all pairs), plus codebook use, tokens per map and encode+decode throughput.

    Every metric is scored on the valid pixels of each map against its own values."""
    started = time.perf_counter()
    encodings = [tok.encode(m) for m in maps]
    restored = [tok.decode(e.ids, stats=e.stats) for e in encodings]
    elapsed = time.perf_counter() - started
    g = torch.Generator().manual_seed(seed)
    sums: dict[str, float] = {"abs_rel": 0.0, "delta1": 0.0, "rmse_rel": 0.0}
    hits = {k: [0, 0] for k in ("ordinal_acc", "ordinal_acc_3pt", "ordinal_acc_4pt", "ordinal_acc_5pt")}
    for m, pred in zip(maps, restored):
        truth = normalize_depth(m.values.double()[None], m.kind, m.valid[None])
        for key, value in map_errors(pred, truth, m.values, m.kind).items():
            sums[key] += value
        ok, true_rel = truth.valid[0], truth.unclamped()[0]
        pred_inv = to_inverse(pred.double().clamp_min(1e-9), m.kind)
        for key, (c, t) in {
            "ordinal_acc": ordinal_accuracy(pred_inv, true_rel, ok, g),
            **{f"ordinal_acc_{k}pt": nearest_of_k_accuracy(pred_inv, true_rel, ok, k, g) for k in (3, 4, 5)},
        }.items():
            hits[key][0] += c
            hits[key][1] += t
    ids = torch.stack([e.ids for e in encodings])
    result = {k: round(v / len(maps), 4) for k, v in sums.items()}
    result.update({k: round(c / max(t, 1), 4) for k, (c, t) in hits.items()})
    result.update({k: round(v, 4) for k, v in codebook_stats(ids, tok.config.codebook_size).items()})
    result.update(tokens_per_map=tok.tokens_per_map, maps=len(maps), maps_per_s=round(len(maps) / elapsed, 2))
    return result
