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
On a CPU, where torch's kernels for these shapes are slow, the percentiles come from numpy's
vectorised sort (``_ranks_by_sorting``, tested against the op it stands for) and bool masks go
through their bytes (``perceptok.depth.masks``). Beside this module: ``code_tables``
(``normalize_codes``, the same mapping per code of integer-coded maps) and ``resample`` (hole
filling and resizing; on a CPU the tokenizer's network input is one compiled loop a map,
``perceptok.depth.fill_kernel``).

Axis legend: ``B`` maps, ``H, W`` pixels.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from perceptok.depth.masks import count, weights
from perceptok.io.depth_files import DEPTH_KINDS

if TYPE_CHECKING:
    from perceptok.depth.code_tables import CodeLookup

LOW_Q, HIGH_Q = 0.02, 0.98
# A map with more pixels than this is sampled with a stride for its percentiles.
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
    """Output of ``normalize_depth`` and ``normalize_codes``.

    Attributes:
        rel: ``(B, H, W)`` relative inverse depth in [0, 1] (1 = nearest), 0 where invalid.
        valid: ``(B, H, W)`` bool, the pixels that took part.
        low, high: ``(B,)`` the inverse depths that map to 0 and 1.
        inverse: ``(B, H, W)`` inverse depth before scaling (1 where invalid).
        codes: for integer-coded maps, the ``CodeLookup`` that ``rel`` and ``valid`` come from.
    ``rel``, ``valid`` and ``inverse`` are made on first use where they are not by-products (an
    encoding of codes on a CPU never needs them).
    """

    _rel: torch.Tensor | Callable[[], torch.Tensor] = dataclasses.field(repr=False)
    _valid: torch.Tensor | Callable[[], torch.Tensor] = dataclasses.field(repr=False)
    low: torch.Tensor
    high: torch.Tensor
    _inverse: torch.Tensor | Callable[[], torch.Tensor] = dataclasses.field(repr=False)
    codes: CodeLookup | None = dataclasses.field(default=None, repr=False)

    @property
    def rel(self) -> torch.Tensor:
        if callable(self._rel):
            self._rel = self._rel()
        return self._rel

    @property
    def valid(self) -> torch.Tensor:
        if callable(self._valid):
            self._valid = self._valid()
        return self._valid

    @property
    def inverse(self) -> torch.Tensor:
        if callable(self._inverse):
            self._inverse = self._inverse()
        return self._inverse

    def counts(self) -> torch.Tensor:
        """``(B,)`` the valid pixels of each map."""
        return self.codes.n if self.codes is not None and self.codes.n is not None else count(self.valid.flatten(1), 1)

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
    """Pixels with a usable measurement of a float map: finite, positive for metric and disparity
    (non-negative for relative inverse depth; for metric depth at least the smallest normal float,
    so 1e-45 m is no measurement), and'ed with ``valid``. NaN fails every comparison, so the lower
    bound and ``< inf`` make the whole test."""
    if kind == "metric":  # at least the smallest normal number: a denormal depth has no finite inverse
        ok = depth >= torch.finfo(work_dtype(depth.dtype)).tiny
    else:
        ok = depth > 0 if kind == "disparity" else depth >= 0
    ok &= depth < torch.inf
    return ok & valid.to(device=depth.device, dtype=torch.bool) if valid is not None else ok


def to_inverse(depth: torch.Tensor, kind: str) -> torch.Tensor:
    return 1.0 / depth if kind == "metric" else depth


def from_inverse(inverse: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "metric":
        return 1.0 / inverse.clamp_min(1e-6)
    if kind == "disparity":
        return inverse.clamp_min(0)
    return inverse


def percentile_stride(pixels: int) -> int:
    """Every how many pixels of a map the percentiles read: all of them, or an exact-enough
    strided sample of maps with more than ``MAX_QUANTILE_VALUES`` pixels."""
    return pixels // MAX_QUANTILE_VALUES + 1 if pixels > MAX_QUANTILE_VALUES else 1


def percentile_sample(flat: torch.Tensor) -> torch.Tensor:
    """``(B, P)`` → the values the percentiles use (``percentile_stride``)."""
    return flat[:, :: percentile_stride(flat.shape[1])]


def _widen_flat(low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A flat map (no spread between its percentiles) gets a unit-free span around its value."""
    flat = (high - low) < 1e-6 * high.abs().clamp_min(1e-6)
    low = torch.where(flat, low - 1e-3 * low.abs().clamp_min(1e-3), low)
    high = torch.where(flat, high + 1e-3 * high.abs().clamp_min(1e-3), high)
    return low, high


def relative(inverse: torch.Tensor, low: torch.Tensor, high: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """Inverse depth ``(B, ...)`` → [0, 1] between each map's ``low`` and ``high`` ``(B,)``; 0 where
    not ``ok``, whatever ``inverse`` holds there (NaN and ±inf included)."""
    shape = (-1,) + (1,) * (inverse.ndim - 1)
    rel = (inverse - low.view(shape).to(inverse.dtype)).div_((high - low).view(shape).to(inverse.dtype)).clamp_(0, 1)
    # Zeroed by multiplying with the mask's ``weights``, then NaN (0 × NaN) set to 0: in place, a
    # third of the time of masked_fill on a CPU.
    return rel.mul_(weights(ok, rel.dtype)).nan_to_num_(0.0)


def percentiles_at(n: torch.Tensor, at: Callable[[torch.Tensor], torch.Tensor],
                  dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The 2nd and 98th percentiles of rows of ``n`` ``(B, 1)`` sorted values, given ``at(ranks)``:
    the values of ascending ranks ``(B, 2)``, in ``dtype``. torch.nanquantile's linear
    interpolation to the bit; rows without values get NaN."""
    q = torch.tensor([LOW_Q, HIGH_Q], dtype=dtype, device=n.device)
    ranks = (q * (n - 1)).clamp_min(0)
    below, above = ranks.long(), ranks.ceil().long()
    bounds = torch.where(n > 0, torch.lerp(at(below), at(above), ranks - below), torch.nan)  # (B, 2)
    return _widen_flat(bounds[:, 0], bounds[:, 1])


def _ranks_by_sorting(values: torch.Tensor, ok: torch.Tensor, n: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``values`` ``(B, P)`` on the CPU → ``at(ranks)``: every row sorted once, valid values first
    (so ranks need no count ``n``), by numpy's vectorised sort (AVX-512, AVX2 or NEON): 4–5×
    faster on a CPU than the two partial ``topk``s, which are torch's fastest there."""
    ascending = torch.from_numpy(np.sort(torch.where(ok, values, torch.inf).numpy(), axis=1))  # (B, P)
    return lambda rank: ascending.gather(1, rank)


def _ranks_by_topk(values: torch.Tensor, ok: torch.Tensor, n: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``values`` ``(B, P)`` on an accelerator → ``at(ranks)``: only the smallest and the largest
    2 % (+2) of each row are needed, which two ``topk`` calls give."""
    p = values.shape[1]
    k = min(p, math.ceil(LOW_Q * (p - 1)) + 2)  # enough ranks from either end for any count of valid values
    smallest = torch.where(ok, values, torch.inf).topk(k, dim=1, largest=False).values  # (B, k) ascending
    largest = torch.where(ok, values, -torch.inf).topk(k, dim=1).values  # (B, k) descending

    def at(rank: torch.Tensor) -> torch.Tensor:  # (B, 2) ascending ranks: low ones from the smallest,
        from_top = (n - 1 - rank).clamp_min(0)   # high ones (counted from the top) from the largest
        low = smallest.gather(1, rank[:, :1].clamp_max(k - 1))
        high = largest.gather(1, from_top[:, 1:].clamp_max(k - 1))
        return torch.cat([low, high], dim=1)

    return at


def robust_range(inverse: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """2nd and 98th percentiles of the valid values of each map: ``(B, H, W)`` → two ``(B,)``, in
    the stats' dtype, carrying no gradient.

    Exactly ``torch.nanquantile`` of the valid values, without its float64 sort: on a CPU each
    row is sorted by numpy, elsewhere two partial ``topk``s give the ends. Maps without valid
    values get NaN."""
    values, ok = percentile_sample(inverse.detach().flatten(1)), percentile_sample(valid.flatten(1))  # (B, P)
    n = count(ok, 1, keepdim=True)  # (B, 1)
    at = (_ranks_by_sorting if values.device.type == "cpu" else _ranks_by_topk)(values, ok, n)
    dtype = stats_dtype(inverse.device)
    return percentiles_at(n, lambda rank: at(rank).to(dtype), dtype)


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
    inverse = to_inverse(x, kind)  # whatever it is where not ok (NaN, ±inf): no such pixel is read
    low, high = robust_range(inverse, ok & measured if measured is not None else ok)
    return Normalized(relative(inverse, low, high, ok), ok, low, high, lambda: torch.where(ok, inverse, 1.0))


