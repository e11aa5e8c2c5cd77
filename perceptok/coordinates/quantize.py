"""Vectorised quantisation of normalised points to coordinate ids and back.

Axis legend: ``P`` points per item (2 corners for a box, 1 for a point), ``T`` tokens per item.
"""

from __future__ import annotations

import math

import numpy as np

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


def _axis_ids(v: np.ndarray, cfg: CoordinateConfig, far: np.ndarray, sides: np.ndarray | None) -> np.ndarray:
    """Quantise normalised values ``v`` in [0, 1]; ``far`` marks far (bottom-right) corners;
    ``sides`` are the (W, H) of the resized input ("pixel" only). Rounding is half to even."""
    n = cfg.bins
    if cfg.quantization == "pixel":
        q = np.round(v * sides)
    elif cfg.quantization == "round":
        q = np.round(v * (n - 1))
    elif cfg.quantization == "floor":
        q = np.minimum(np.floor(v * n), n - 1)
    else:  # grid (Kosmos-2): a far corner takes the last cell it covers, ceil(v·n − 1).
        q = np.clip(np.where(far, np.ceil(v * n - 1), np.floor(v * n)), 0, n - 1)
    return q.astype(np.int64)


def _axis_values(q: np.ndarray, cfg: CoordinateConfig, sides: np.ndarray | None) -> np.ndarray:
    q = q.astype(np.float64)
    if cfg.quantization == "pixel":
        return q / sides
    if cfg.quantization == "round":
        return q / (cfg.bins - 1)
    return (q + 0.5) / cfg.bins


def points_to_ids(points: np.ndarray, cfg: CoordinateConfig, far: np.ndarray,
                  sides: np.ndarray | None = None) -> np.ndarray:
    """``(..., P, 2)`` normalised x, y → ``(..., T)`` coordinate ids (int64) in the config's order.

    ``far`` is a ``(P,)`` bool array marking far corners (only the grid quantiser uses it);
    ``sides`` ``(..., 1, 2)`` the (W, H) of the resized input (only the pixel quantiser).
    """
    q = _axis_ids(points, cfg, far[:, None], sides)  # (..., P, 2)
    if cfg.quantization == "grid":
        return q[..., 1] * cfg.bins + q[..., 0]  # (..., P): row · bins + col
    if cfg.order == "yx":
        q = q[..., ::-1]
    return q.reshape(*q.shape[:-2], q.shape[-2] * 2)  # (..., 2P)


def ids_to_points(ids: np.ndarray, cfg: CoordinateConfig, sides: np.ndarray | None = None) -> np.ndarray:
    """``(..., T)`` int64 coordinate ids → ``(..., P, 2)`` normalised x, y (float64); ``sides`` as
    in ``points_to_ids``."""
    if cfg.quantization == "grid":
        q = np.stack([ids % cfg.bins, ids // cfg.bins], axis=-1)  # (..., P, 2)
        centres = _axis_values(q, cfg, sides)
        if q.shape[-2] != 2:
            return centres
        # Kosmos-2's reference post-processing (patch_index_to_coordinate in microsoft/unilm
        # kosmos-2/demo/decode_string.py, copied into transformers' Kosmos2Processor): a box whose
        # corners share a cell, a row or a column spans those cells' edges, else cell centres.
        shared = (q[..., 0, :] == q[..., 1, :]).any(-1)  # (...,)
        edges = np.stack([q[..., 0, :] / cfg.bins, (q[..., 1, :] + 1) / cfg.bins], axis=-2)
        return np.where(shared[..., None, None], edges, centres)
    q = ids.reshape(*ids.shape[:-1], ids.shape[-1] // 2, 2)
    if cfg.order == "yx":
        q = q[..., ::-1]
    return _axis_values(q, cfg, sides)
