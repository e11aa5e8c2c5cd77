"""Vectorised quantisation of normalised points to coordinate ids and back.

Axis legend: ``P`` points per item (2 corners for a box, 1 for a point), ``T`` tokens per item.
"""

from __future__ import annotations

import torch

from perceptok.coordinates.config import CoordinateConfig


def _axis_ids(v: torch.Tensor, cfg: CoordinateConfig, far: torch.Tensor) -> torch.Tensor:
    """Quantise normalised values ``v`` in [0, 1]; ``far`` marks far (bottom-right) corners."""
    n = cfg.bins
    if cfg.quantization == "round":
        return torch.round(v * (n - 1)).long()
    if cfg.quantization == "floor":
        return torch.floor(v * n).clamp(max=n - 1).long()
    # grid (Kosmos-2): a far corner takes the last cell it covers, ceil(v·n − 1).
    return torch.where(far, torch.ceil(v * n - 1), torch.floor(v * n)).clamp(0, n - 1).long()


def _axis_values(q: torch.Tensor, cfg: CoordinateConfig) -> torch.Tensor:
    if cfg.quantization == "round":
        return q.double() / (cfg.bins - 1)
    return (q.double() + 0.5) / cfg.bins


def points_to_ids(points: torch.Tensor, cfg: CoordinateConfig, far: torch.Tensor) -> torch.Tensor:
    """``(..., P, 2)`` normalised x, y → ``(..., T)`` coordinate ids in the config's order.

    ``far`` is a ``(P,)`` bool tensor marking far corners (only the grid quantiser uses it).
    """
    far = far.view(-1, 1).expand(points.shape[-2:])
    q = _axis_ids(points, cfg, far)  # (..., P, 2)
    if cfg.quantization == "grid":
        return q[..., 1] * cfg.bins + q[..., 0]  # (..., P): row · bins + col
    if cfg.order == "yx":
        q = q.flip(-1)
    return q.flatten(-2)  # (..., 2P)


def ids_to_points(ids: torch.Tensor, cfg: CoordinateConfig) -> torch.Tensor:
    """``(..., T)`` coordinate ids → ``(..., P, 2)`` normalised x, y (float64)."""
    if cfg.quantization == "grid":
        q = torch.stack([ids % cfg.bins, ids // cfg.bins], dim=-1)  # (..., P, 2)
        centres = _axis_values(q, cfg)
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
    return _axis_values(q, cfg)
