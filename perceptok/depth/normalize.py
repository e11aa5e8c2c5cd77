"""Depth ⇄ the tokenizer's internal convention: relative inverse depth in [0, 1] per map,
1 = nearest (the sense of the original's Depth Anything maps, so tokens mean the same).

A map's valid pixels are turned into inverse depth (``metric``: 1/d; ``disparity`` and
``relative_inverse`` already are), and scaled by their 2nd and 98th percentiles, so a few wrong
measurements (flying pixels, a saturated sky) do not decide the scale. Invalid pixels take no part
in the statistics; they are filled from their surroundings (push-pull) so the encoder sees no
artificial edges, and a validity channel tells it where the real measurements were.

Axis legend: ``B`` maps, ``H, W`` pixels.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from perceptok.io.depth_files import DEPTH_KINDS

LOW_Q, HIGH_Q = 0.02, 0.98


@dataclasses.dataclass
class DepthStats:
    """The per-map normalisation, what ``decode`` needs to restore depth in the input's units.

    Attributes:
        low, high: ``(B,)`` inverse depth at the 2nd and 98th percentiles of the valid pixels.
        kind: the input's kind (one of ``DEPTH_KINDS``), the same for the batch.
        sizes: ``(H, W)`` of each input map.
        grids: token grid ``(rows, cols)`` of each map.
    """

    low: torch.Tensor
    high: torch.Tensor
    kind: str
    sizes: list[tuple[int, int]]
    grids: list[tuple[int, int]]


def check_kind(kind: str) -> str:
    if kind not in DEPTH_KINDS:
        raise ValueError(f"kind must be one of {DEPTH_KINDS}, got {kind!r}")
    return kind


def valid_mask(depth: torch.Tensor, kind: str, valid: torch.Tensor | None) -> torch.Tensor:
    """Finite pixels (positive ones for metric and disparity), and'ed with a given mask."""
    ok = torch.isfinite(depth)
    ok &= depth > 0 if kind != "relative_inverse" else depth >= 0
    return ok & valid.bool() if valid is not None else ok


def to_inverse(depth: torch.Tensor, kind: str) -> torch.Tensor:
    return 1.0 / depth if kind == "metric" else depth


def from_inverse(inverse: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "metric":
        return 1.0 / inverse.clamp_min(1e-6)
    if kind == "disparity":
        return inverse.clamp_min(0)
    return inverse


def robust_range(inverse: torch.Tensor, valid: torch.Tensor) -> tuple[float, float]:
    """2nd and 98th percentiles of the valid values of one ``(H, W)`` map."""
    values = inverse[valid].double()
    if len(values) > 1_000_000:  # quantile has a size limit; a strided sample is exact enough
        values = values[:: len(values) // 1_000_000 + 1]
    low, high = torch.quantile(values, torch.tensor([LOW_Q, HIGH_Q], dtype=torch.float64)).tolist()
    if high - low < 1e-6 * max(abs(high), 1e-6):  # a flat map: give it a unit-free span
        low, high = low - 1e-3 * max(abs(low), 1e-3), high + 1e-3 * max(abs(high), 1e-3)
    return low, high


def fill_holes(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Push-pull fill of ``(B, 1, H, W)`` maps: each hole takes the average of the nearest
    scale at which its neighbourhood has measurements."""
    w = valid.float()
    if bool(w.all()):
        return x
    levels = [(x * w, w)]
    while min(levels[-1][0].shape[-2:]) > 1 and not bool((levels[-1][1] > 0).all()):
        xs, ws = levels[-1]
        levels.append((F.avg_pool2d(xs, 2, ceil_mode=True), F.avg_pool2d(ws, 2, ceil_mode=True)))
    xs, ws = levels[-1]
    filled = torch.where(ws > 0, xs / ws.clamp_min(1e-12), xs.sum((-2, -1), keepdim=True) / ws.sum((-2, -1), keepdim=True).clamp_min(1e-12))
    for xs, ws in reversed(levels[:-1]):
        up = F.interpolate(filled, size=xs.shape[-2:], mode="bilinear", align_corners=False)
        filled = torch.where(ws > 0, xs / ws.clamp_min(1e-12), up)
    return torch.where(valid, x, filled)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``(B, C, H, W)``, anti-aliased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
