"""Depth ⇄ the tokenizer's internal convention: relative inverse depth in [0, 1] per map,
1 = nearest (the sense of the original's Depth Anything maps, so tokens mean the same).

``normalize_depth`` is the one definition of that mapping; the tokenizer, the training data, the
metrics, evaluation, the CLI and the LLaVA plugin all call it. A map's valid pixels are turned
into inverse depth (``metric``: 1/d; ``disparity`` and ``relative_inverse`` already are) and
scaled by their 2nd and 98th percentiles, so a few wrong measurements (flying pixels, a
saturated sky) do not decide the scale. Invalid pixels take no part in the statistics; they are
filled from their surroundings (push-pull) so the encoder sees no artificial edges, and a
validity channel tells it where the real measurements were.

Everything here is batched tensor code that runs on the input's device in the input's precision
(at least float32; statistics in float64 where the device has it), with no host round trip per map.

Axis legend: ``B`` maps, ``H, W`` pixels.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from perceptok.io.depth_files import DEPTH_KINDS

LOW_Q, HIGH_Q = 0.02, 0.98
# torch.quantile sorts at most 2**24 values per call: rows are processed in chunks under that,
# and a map with more valid pixels than MAX_QUANTILE_VALUES is sampled with a stride.
QUANTILE_LIMIT = 2**24
MAX_QUANTILE_VALUES = 1_000_000


@dataclasses.dataclass
class DepthStats:
    """The per-map normalisation, what ``decode`` needs to restore depth in the input's units.

    Attributes:
        low, high: ``(B,)`` inverse depth at the 2nd and 98th percentiles of the valid pixels
            (float64 where the device has it), on the input's device.
        kind: the input's kind (one of ``DEPTH_KINDS``), the same for the batch.
        sizes: ``(H, W)`` of each input map.
        grids: token grid ``(rows, cols)`` of each map.
    """

    low: torch.Tensor
    high: torch.Tensor
    kind: str
    sizes: list[tuple[int, int]]
    grids: list[tuple[int, int]]


@dataclasses.dataclass
class Normalized:
    """Output of ``normalize_depth``.

    Attributes:
        rel: ``(B, H, W)`` relative inverse depth in [0, 1] (1 = nearest), 0 where invalid.
        valid: ``(B, H, W)`` bool, the pixels that took part.
        low, high: ``(B,)`` the inverse depths that map to 0 and 1.
        inverse: ``(B, H, W)`` inverse depth before scaling (1 where invalid).
    """

    rel: torch.Tensor
    valid: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    inverse: torch.Tensor

    def unclamped(self) -> torch.Tensor:
        """``(B, H, W)`` relative inverse depth without the clamp to [0, 1], in the stats' precision."""
        return (self.inverse.to(self.low.dtype) - self.low[:, None, None]) / (self.high - self.low)[:, None, None]


def check_kind(kind: str) -> str:
    if kind not in DEPTH_KINDS:
        raise ValueError(f"kind must be one of {DEPTH_KINDS}, got {kind!r}")
    return kind


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The float type pixel maths runs in: the input's, but never below float32 (inverse depth
    of bf16 metres would lose the near/far order the tokens exist to keep)."""
    return torch.promote_types(dtype, torch.float32) if dtype.is_floating_point else torch.float32


def stats_dtype(device: torch.device) -> torch.dtype:
    """float64 for percentiles and restoration, except on devices without it (MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def valid_mask(depth: torch.Tensor, kind: str, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Pixels with a usable measurement: finite, positive for metric and disparity (non-negative
    for relative inverse depth; for metric depth at least the smallest normal float, so 1e-45 m
    is no measurement), and'ed with ``valid``."""
    ok = torch.isfinite(depth)
    if kind == "metric":  # at least the smallest normal number: a denormal depth has no finite inverse
        ok &= depth >= torch.finfo(work_dtype(depth.dtype)).tiny
    else:
        ok &= depth > 0 if kind == "disparity" else depth >= 0
    return ok & valid.to(device=depth.device, dtype=torch.bool) if valid is not None else ok


def to_inverse(depth: torch.Tensor, kind: str) -> torch.Tensor:
    return 1.0 / depth if kind == "metric" else depth


def from_inverse(inverse: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "metric":
        return 1.0 / inverse.clamp_min(1e-6)
    if kind == "disparity":
        return inverse.clamp_min(0)
    return inverse


def robust_range(inverse: torch.Tensor, valid: torch.Tensor, complete: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """2nd and 98th percentiles of the valid values of each map: ``(B, H, W)`` → two ``(B,)``.
    ``complete=True`` promises every pixel is valid (a faster path, same result).

    Maps without valid values get NaN; ``normalize_depth`` rejects those before."""
    dtype = stats_dtype(inverse.device)
    values = inverse.to(dtype).flatten(1)  # (B, H·W)
    if complete is not True:
        values = values.masked_fill(~valid.flatten(1), float("nan"))
    if values.shape[1] > MAX_QUANTILE_VALUES:  # an exact-enough strided sample of huge maps
        values = values[:, :: values.shape[1] // MAX_QUANTILE_VALUES + 1]
    q = torch.tensor([LOW_Q, HIGH_Q], dtype=dtype, device=values.device)
    rows = max(QUANTILE_LIMIT // max(values.shape[1], 1), 1)
    quantile = torch.quantile if complete is True else torch.nanquantile  # the same values where nothing is NaN
    bounds = torch.cat([quantile(chunk, q, dim=1) for chunk in values.split(rows)], dim=1)  # (2, B)
    low, high = bounds[0], bounds[1]
    flat = (high - low) < 1e-6 * high.abs().clamp_min(1e-6)  # a flat map: give it a unit-free span
    low = torch.where(flat, low - 1e-3 * low.abs().clamp_min(1e-3), low)
    high = torch.where(flat, high + 1e-3 * high.abs().clamp_min(1e-3), high)
    return low, high


def normalize_depth(depth: torch.Tensor, kind: str, valid: torch.Tensor | None = None,
                    measured: torch.Tensor | None = None) -> Normalized:
    """Depth maps ``(B, H, W)`` of one kind → relative inverse depth in [0, 1].

    Args:
        depth: values in ``kind`` (metres, disparity or relative inverse depth), any float or
            integer dtype, any device; 0, NaN and ±inf are invalid.
        kind: one of ``DEPTH_KINDS``.
        valid: optional ``(B, H, W)`` bool mask and'ed with the automatic one.
        measured: optional ``(B, H, W)`` bool: only these valid pixels set the percentiles
            (training data computes the range from a sparsified copy of a dense map).
    """
    check_kind(kind)
    x = depth.to(work_dtype(depth.dtype))
    ok = valid_mask(x, kind, valid)
    inverse = to_inverse(torch.where(ok, x, torch.ones_like(x)), kind)
    use = ok & measured if measured is not None else ok
    complete = bool(use.all()) if use.device.type == "cpu" else None  # on accelerators: no host sync for a shortcut
    low, high = robust_range(inverse, use, complete)
    span = (high - low)[:, None, None]
    rel = ((inverse - low[:, None, None].to(x.dtype)) / span.to(x.dtype)).clamp(0, 1)
    return Normalized(rel.masked_fill(~ok, 0), ok, low, high, inverse)


def fill_holes(x: torch.Tensor, valid: torch.Tensor, sync: bool = False) -> torch.Tensor:
    """Push-pull fill of ``(B, 1, H, W)`` maps: each hole takes the average of the nearest
    scale at which its neighbourhood has measurements; a map with no measurement is 0. The
    pyramid goes down to 1×1, so nothing waits on the device; ``sync=True`` stops at the first
    level where every cell has a measurement (the same result, cheaper, one host sync a level)."""
    w = valid.to(x.dtype)
    levels = [(x * w, w)]
    while max(levels[-1][0].shape[-2:]) > 1 and not (sync and bool((levels[-1][1] > 0).all())):
        xs, ws = levels[-1]
        levels.append((F.avg_pool2d(xs, 2, ceil_mode=True), F.avg_pool2d(ws, 2, ceil_mode=True)))
    xs, ws = levels[-1]
    filled = torch.where(ws > 0, xs / ws.clamp_min(1e-12), torch.zeros_like(xs))
    for xs, ws in reversed(levels[:-1]):
        up = F.interpolate(filled, size=xs.shape[-2:], mode="bilinear", align_corners=False)
        filled = torch.where(ws > 0, xs / ws.clamp_min(1e-12), up)
    return torch.where(valid, x, filled)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``(B, C, H, W)``, anti-aliased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
