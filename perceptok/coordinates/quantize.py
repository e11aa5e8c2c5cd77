"""Vectorised quantisation of normalised points to coordinate ids and back.

Axis legend: ``P`` points per item (2 corners for a box, 1 for a point), ``T`` tokens per item.
"""

from __future__ import annotations

import math

import torch

from perceptok.coordinates.config import CoordinateConfig


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The (H, W) that Qwen2-VL/2.5-VL processors resize an image to: sides multiples of
    ``factor``, area within [min_pixels, max_pixels], aspect ratio kept (qwen_vl_utils
    vision_process.smart_resize, written out from its definition)."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"an image of {height}×{width} has an aspect ratio over 200, which the model refuses")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def _axis_ids(v: torch.Tensor, cfg: CoordinateConfig, far: torch.Tensor, sides: torch.Tensor | None) -> torch.Tensor:
    """Quantise normalised values ``v`` in [0, 1]; ``far`` marks far (bottom-right) corners;
    ``sides`` are the (W, H) of the resized input ("pixel" only)."""
    n = cfg.bins
    if cfg.quantization == "pixel":
        return torch.round(v * sides).long()
    if cfg.quantization == "round":
        return torch.round(v * (n - 1)).long()
    if cfg.quantization == "floor":
        return torch.floor(v * n).clamp(max=n - 1).long()
    # grid (Kosmos-2): a far corner takes the last cell it covers, ceil(v·n − 1).
    return torch.where(far, torch.ceil(v * n - 1), torch.floor(v * n)).clamp(0, n - 1).long()


def _axis_values(q: torch.Tensor, cfg: CoordinateConfig, sides: torch.Tensor | None) -> torch.Tensor:
    if cfg.quantization == "pixel":
        return q.double() / sides
    if cfg.quantization == "round":
        return q.double() / (cfg.bins - 1)
    return (q.double() + 0.5) / cfg.bins


def points_to_ids(points: torch.Tensor, cfg: CoordinateConfig, far: torch.Tensor,
                  sides: torch.Tensor | None = None) -> torch.Tensor:
    """``(..., P, 2)`` normalised x, y → ``(..., T)`` coordinate ids in the config's order.

    ``far`` is a ``(P,)`` bool tensor marking far corners (only the grid quantiser uses it);
    ``sides`` ``(..., 1, 2)`` the (W, H) of the resized input (only the pixel quantiser).
    """
    far = far.view(-1, 1).expand(points.shape[-2:])
    q = _axis_ids(points, cfg, far, sides)  # (..., P, 2)
    if cfg.quantization == "grid":
        return q[..., 1] * cfg.bins + q[..., 0]  # (..., P): row · bins + col
    if cfg.order == "yx":
        q = q.flip(-1)
    return q.flatten(-2)  # (..., 2P)


def ids_to_points(ids: torch.Tensor, cfg: CoordinateConfig, sides: torch.Tensor | None = None) -> torch.Tensor:
    """``(..., T)`` coordinate ids → ``(..., P, 2)`` normalised x, y (float64); ``sides`` as in
    ``points_to_ids``."""
    if cfg.quantization == "grid":
        q = torch.stack([ids % cfg.bins, ids // cfg.bins], dim=-1)  # (..., P, 2)
        centres = _axis_values(q, cfg, sides)
        if q.shape[-2] != 2:
            return centres
        # Kosmos-2's reference post-processing (patch_index_to_coordinate in microsoft/unilm
        # kosmos-2/demo/decode_string.py, copied into transformers' Kosmos2Processor): a box whose
        # corners share a cell, a row or a column spans those cells' edges, else cell centres.
        shared = (q[..., 0, :] == q[..., 1, :]).any(-1)  # (...,)
        edges = torch.stack([q[..., 0, :].double() / cfg.bins, (q[..., 1, :].double() + 1) / cfg.bins], dim=-2)
        return torch.where(shared[..., None, None], edges, centres)
    else:
        q = ids.unflatten(-1, (-1, 2))
        if cfg.order == "yx":
            q = q.flip(-1)
    return _axis_values(q, cfg, sides)
