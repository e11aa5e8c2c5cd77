"""Depth-tokenizer quality metrics.

Axis legend: ``H, W`` pixels of one map. Every metric uses valid pixels only.

- ``abs_rel``, ``delta1``: on depth restored in the input's kind with ``stats``
  (mean |d̂ − d| / d, share with max(d̂/d, d/d̂) < 1.25).
- ``rmse_rel``: RMSE of the relative inverse map (both normalised with the input's stats).
- ``ordinal_acc``: for 1,000 random pairs of valid pixels per map whose true gap is at least 0.08
  in inverse depth normalised by its 2nd–98th percentiles, the share that the reconstruction
  orders correctly (the analogue of AURORA's "relative-depth accuracy of decoded tokens").
- ``ordinal_acc_kpt``: the nearest of k random points (pairwise gaps ≥ 0.08) is found, as in
  HardBLINK.
"""

from __future__ import annotations

import math

import torch

from perceptok.depth.normalize import Normalized, to_inverse

MIN_GAP = 0.08


def map_errors(pred: torch.Tensor, truth: Normalized, raw: torch.Tensor, kind: str) -> dict[str, float]:
    """abs_rel, delta1 and rmse_rel of one map: ``pred`` restored in ``kind``, ``raw`` the true
    ``(H, W)`` values and ``truth`` their ``normalize_depth`` (batch of one)."""
    valid = truth.valid[0]
    p, t = pred[valid].double(), raw[valid].double()
    if kind == "metric":
        d_pred, d_true = p, t
    else:  # disparity-like kinds: compare as depth, 1 / value
        d_pred, d_true = 1 / p.clamp_min(1e-9), 1 / t.clamp_min(1e-9)
    ratio = torch.maximum(d_pred / d_true, d_true / d_pred)
    low, high = truth.low[0], truth.high[0]
    rel_t = truth.unclamped()[0][valid]
    rel_p = (to_inverse(p.clamp_min(1e-9), kind) - low) / (high - low)
    return {
        "abs_rel": float(((d_pred - d_true).abs() / d_true).mean()),
        "delta1": float((ratio < 1.25).double().mean()),
        "rmse_rel": float(((rel_p.clamp(0, 1) - rel_t.clamp(0, 1)) ** 2).mean().sqrt()),
    }


def ordinal_accuracy(pred_inv: torch.Tensor, true_rel: torch.Tensor, valid: torch.Tensor, g: torch.Generator,
                     pairs: int = 1000) -> tuple[int, int]:
    """(correct, total) over pairs of valid pixels with a true normalised gap ≥ MIN_GAP.
    ``true_rel``: the truth's unclamped relative inverse depth (``Normalized.unclamped``)."""
    rel = true_rel[valid]
    pred = pred_inv[valid]
    n = len(rel)
    correct = total = 0
    for _ in range(20):  # draw in rounds until enough pairs pass the gap rule
        a, b = torch.randint(n, (pairs * 4,), generator=g), torch.randint(n, (pairs * 4,), generator=g)
        keep = (rel[a] - rel[b]).abs() >= MIN_GAP
        a, b = a[keep][: pairs - total], b[keep][: pairs - total]
        correct += int(((pred[a] - pred[b]) * (rel[a] - rel[b]) > 0).sum())
        total += len(a)
        if total >= pairs:
            break
    return correct, total


def nearest_of_k_accuracy(pred_inv: torch.Tensor, true_rel: torch.Tensor, valid: torch.Tensor, k: int,
                          g: torch.Generator, trials: int = 300) -> tuple[int, int]:
    """(correct, total): is the nearest of k points (pairwise true gaps ≥ MIN_GAP) found?"""
    rel = true_rel[valid]
    pred = pred_inv[valid]
    n = len(rel)
    idx = torch.randint(n, (trials * 20, k), generator=g)
    r = rel[idx]  # (T, k)
    gaps = (r[:, :, None] - r[:, None, :]).abs() + torch.eye(k, dtype=r.dtype) * 1e9
    idx = idx[gaps.flatten(1).min(-1).values >= MIN_GAP][:trials]
    if len(idx) == 0:
        return 0, 0
    found = pred[idx].argmax(-1) == rel[idx].argmax(-1)
    return int(found.sum()), len(idx)


def codebook_stats(ids: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Share of codes used, and the perplexity of the code distribution."""
    counts = torch.bincount(ids.flatten(), minlength=codebook_size).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"codebook_usage": float((counts > 0).double().mean()), "perplexity": float(math.exp(entropy))}
