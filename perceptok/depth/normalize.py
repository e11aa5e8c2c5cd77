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
On a CPU, where torch's kernels for these shapes are slow, a few steps take exact faster routes
(each tested against the op it stands for): percentiles from numpy's vectorised sort
(``_ranks_by_sorting``), bilinear resizes as matrix products (``_bilinear``), and bool masks
through their bytes (``weights``, ``both``, ``every``); the tokenizer's network input (hole
filling and resizing) is one compiled loop a map there (``perceptok.depth.fill_kernel``).

Axis legend: ``B`` maps, ``H, W`` pixels.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import weakref
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from perceptok.io.depth_files import DEPTH_KINDS

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
class CodeLookup:
    """How every pixel of integer-coded maps normalises (``normalize_codes``), before any pixel is
    looked up: ``codes`` ``(B, H, W)``, the maps; ``signed`` ``(B, K)``, the relative depth of
    every code for each map (-1: an invalid code); ``n`` ``(B,)`` the valid pixels of each map
    (None where the histogram was of a sample). The CPU's compiled ``model_input`` reads the
    pixels from it."""

    codes: torch.Tensor
    signed: torch.Tensor
    n: torch.Tensor | None


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


def finite(x: torch.Tensor) -> torch.Tensor:
    """``torch.isfinite`` of a float tensor in two passes (``|x| < inf``; NaN compares false)
    instead of its four: the same mask, 2.5× faster on a CPU."""
    return x.abs() < torch.inf


def weights(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool mask as 0/1 values of ``dtype``, converted from its bytes: the same values, 3× faster
    than a bool → float conversion on a CPU."""
    return mask.view(torch.uint8).to(dtype)


def every(mask: torch.Tensor) -> bool:
    """``bool(mask.all())`` of a bool mask, read as the smallest of its bytes: 20× faster on a CPU
    (a host sync either way)."""
    return mask.numel() == 0 or bool(mask.view(torch.uint8).min())


def both(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a & b`` of bool tensors, through their bytes: the same mask, and 15× faster on a CPU where
    the shapes broadcast (torch has no vectorised bool kernel for that)."""
    return (a.view(torch.uint8) & b.view(torch.uint8)).view(torch.bool)


_WORDS = 127  # int64 words summed at once by ``count``: each byte lane then stays ≤ 127, no carry, no sign


def count(mask: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """The true values of a bool mask along ``dim``, as int64, exactly. On a CPU, along a last
    dimension of a multiple of 8: the mask's bytes are read as int64 words, eight pixels a word,
    and summed ``_WORDS`` words at a time (every byte lane then holds a count ≤ 127, so no lane
    carries into the next); the eight lanes of each sum are then added up, and the few bytes
    past the last whole chunk summed as bytes: 20× faster than a byte sum into int32 for 32 maps
    of 640×480. Masks under 2²⁰ pixels, other dimensions and other devices take that byte sum
    (a map has far fewer than 2³¹ pixels)."""
    dim = dim % mask.ndim
    size = mask.shape[dim]
    raw = mask.contiguous().view(torch.uint8)
    chunk = 8 * _WORDS
    if mask.device.type != "cpu" or dim != mask.ndim - 1 or size % 8 or size < chunk or mask.numel() < 1 << 20:
        return raw.sum(dim, keepdim=keepdim, dtype=torch.int32).long()  # small masks: fewer, cheaper calls
    body = size - size % chunk
    sums = raw[..., :body].view(torch.int64).unflatten(-1, (-1, _WORDS)).sum(-1)  # (..., chunks), 8 lanes each
    total = sums.view(torch.uint8).sum(-1, dtype=torch.int32)  # the lanes' bytes, each ≤ 127
    if body < size:
        total += raw[..., body:].sum(-1, dtype=torch.int32)
    total = total.long()
    return total.unsqueeze(-1) if keepdim else total


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


def _stride(pixels: int) -> int:
    """Every how many pixels of a map the percentiles read: all of them, or an exact-enough
    strided sample of maps with more than ``MAX_QUANTILE_VALUES`` pixels."""
    return pixels // MAX_QUANTILE_VALUES + 1 if pixels > MAX_QUANTILE_VALUES else 1


def _sample(flat: torch.Tensor) -> torch.Tensor:
    """``(B, P)`` → the values the percentiles use (``_stride``)."""
    return flat[:, :: _stride(flat.shape[1])]


def _widen_flat(low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A flat map (no spread between its percentiles) gets a unit-free span around its value."""
    flat = (high - low) < 1e-6 * high.abs().clamp_min(1e-6)
    low = torch.where(flat, low - 1e-3 * low.abs().clamp_min(1e-3), low)
    high = torch.where(flat, high + 1e-3 * high.abs().clamp_min(1e-3), high)
    return low, high


def _relative(inverse: torch.Tensor, low: torch.Tensor, high: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """Inverse depth ``(B, ...)`` → [0, 1] between each map's ``low`` and ``high`` ``(B,)``; 0 where
    not ``ok``, whatever ``inverse`` holds there (NaN and ±inf included)."""
    shape = (-1,) + (1,) * (inverse.ndim - 1)
    rel = (inverse - low.view(shape).to(inverse.dtype)).div_((high - low).view(shape).to(inverse.dtype)).clamp_(0, 1)
    # Zeroed by multiplying with the mask's ``weights``, then NaN (0 × NaN) set to 0: in place, a
    # third of the time of masked_fill on a CPU.
    return rel.mul_(weights(ok, rel.dtype)).nan_to_num_(0.0)


def _interpolated(n: torch.Tensor, at: Callable[[torch.Tensor], torch.Tensor],
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
    values, ok = _sample(inverse.detach().flatten(1)), _sample(valid.flatten(1))  # (B, P)
    n = count(ok, 1, keepdim=True)  # (B, 1)
    at = (_ranks_by_sorting if values.device.type == "cpu" else _ranks_by_topk)(values, ok, n)
    dtype = stats_dtype(inverse.device)
    return _interpolated(n, lambda rank: at(rank).to(dtype), dtype)


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
    return Normalized(_relative(inverse, low, high, ok), ok, low, high, lambda: torch.where(ok, inverse, 1.0))


@dataclasses.dataclass(frozen=True)
class _CodeTable:
    """What ``normalize_codes`` derives from a code table, once per table, kind and device:
    each code's validity and inverse depth ``(K,)``, and the codes in ascending inverse depth
    (``order``; ``None`` when already ascending, ``"reversed"`` when descending, as metric depth
    in millimetres is) with their values in the stats' dtype."""

    ok: torch.Tensor
    inverse: torch.Tensor
    order: torch.Tensor | str | None
    ascending: torch.Tensor

    def prefix(self, k: int) -> _CodeTable:
        """The first ``k`` codes of a monotonic table (``order`` not a permutation), as views."""
        ascending = self.ascending[:k] if self.order is None else self.ascending[self.ascending.numel() - k :]
        return _CodeTable(self.ok[:k], self.inverse[:k], self.order, ascending)


def _ranked(x: torch.Tensor, order: torch.Tensor | str | None) -> torch.Tensor:
    """``(..., K)`` per-code values → in ascending inverse depth, by a ``_CodeTable.order`` (a flip
    is 10× cheaper than indexing by a reversed order)."""
    if order is None:
        return x
    return x.flip(-1) if isinstance(order, str) else x[..., order]


# id(table) → (a weak reference to it, its derived views): tensors compare by value, so a
# WeakKeyDictionary cannot hold them; an entry goes when its table does.
_CODE_TABLES: dict[int, tuple[weakref.ref, dict[tuple[str, torch.device], _CodeTable]]] = {}


def _code_table(table: torch.Tensor, kind: str, device: torch.device) -> _CodeTable:
    ref, per_table = _CODE_TABLES.get(id(table), (None, {}))
    if ref is None or ref() is not table:
        per_table = {}
        _CODE_TABLES[id(table)] = (weakref.ref(table), per_table)
        weakref.finalize(table, _CODE_TABLES.pop, id(table), None)
    if (kind, device) not in per_table:
        t = table.to(device, work_dtype(table.dtype))
        ok = valid_mask(t, kind)
        inverse = to_inverse(torch.where(ok, t, torch.ones_like(t)), kind)
        # Invalid codes count nothing, so their place in the order is free: a table monotonic
        # over its valid codes (any linear encoding) needs no sort.
        step = inverse[ok].diff()
        if bool((step >= 0).all()):
            order = None
        elif bool((step <= 0).all()):
            order = "reversed"
        else:
            order = torch.sort(torch.where(ok, inverse, torch.inf), stable=True).indices
        values = inverse.to(stats_dtype(device))
        per_table[(kind, device)] = _CodeTable(ok, inverse, order, _ranked(values, order))
    return per_table[(kind, device)]


def _table_rows(codes: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, P)`` codes → each pixel's row in the ``(B·K,)`` per-map tables of ``k`` codes each:
    int32 where it fits (half the memory traffic of int64 in the add, the histogram and the
    lookups; the values are the same)."""
    b = codes.shape[0]
    dtype = torch.int32 if b * k < 2**31 else torch.int64
    index = codes.to(dtype)
    return index + torch.arange(0, b * k, k, device=codes.device, dtype=dtype)[:, None] if b > 1 else index


def normalize_codes(codes: torch.Tensor, table: torch.Tensor, kind: str) -> Normalized:
    """Integer-coded maps ``(B, H, W)`` whose code ``k`` stands for the depth ``table[k]`` (NaN:
    no measurement; ``perceptok.io.DepthCodes``) → exactly what ``normalize_depth`` gives for
    ``table[codes]``, computed per code instead of per pixel: the percentiles come from a
    histogram of each map's codes (linear time, no sort) and every pixel is one table lookup.
    What depends on the table alone is computed once per table object (treat it as read-only)."""
    check_kind(kind)
    b, k = codes.shape[0], table.numel()
    view = _code_table(table, kind, codes.device)
    flat = codes.flatten(1)  # (B, P)
    if codes.device.type == "cpu" and codes.numel():  # one compiled pass, each map into its own row
        from perceptok.depth.histogram_kernel import code_histograms  # numba, imported on first use

        counts = code_histograms(flat, _stride(flat.shape[1]), k)  # (B, K'), K' one past the largest code
        if isinstance(view.order, torch.Tensor):  # a sorted table ranks every code
            counts = F.pad(counts, (0, k - counts.shape[1]))
        else:
            # Codes above the largest present count nothing, and the rest of a monotonic table
            # keeps its order: its prefix serves, with every per-code step a fraction of the work
            # (depth in millimetres uses a few thousand of 65,536 codes). The same numbers.
            k = counts.shape[1]
            view = view.prefix(k)
    else:  # one histogram for the batch, each map's codes shifted into its own rows
        counts = torch.bincount(_sample(_table_rows(flat, k)).flatten(), minlength=b * k).view(b, k)
    counts = counts * view.ok  # (B, K)
    cum = _ranked(counts, view.order).cumsum(1)  # (B, K), codes by inverse depth
    n = cum[:, -1:]  # (B, 1)
    at = lambda r: view.ascending[torch.searchsorted(cum, r, right=True).clamp_max(k - 1)]  # noqa: E731
    low, high = _interpolated(n, at, view.ascending.dtype)
    rel_t = _relative(view.inverse.expand(b, k), low, high, view.ok.expand(b, k))  # (B, K)
    lookup = CodeLookup(codes, torch.where(view.ok, rel_t, -1.0), n[:, 0] if _stride(flat.shape[1]) == 1 else None)
    rows = functools.cache(lambda: _table_rows(flat, k).view(-1))  # made where a pixel is looked up here
    look = lambda x: x.reshape(-1).index_select(0, rows()).view(codes.shape)  # noqa: E731
    signed = functools.cache(lambda: look(lookup.signed))  # one lookup for both: -1 marks an invalid code
    return Normalized(lambda: signed().clamp_min(0), lambda: signed() >= 0, low, high,
                      lambda: look(view.inverse.expand(b, k)), lookup)


def _sum2(x: torch.Tensor) -> torch.Tensor:
    """Sums of 2×2 cells of ``(B, C, H, W)`` (odd sizes padded with zeros): ``(B, C, ⌈H/2⌉, ⌈W/2⌉)``.
    Strided adds, about three times faster than ``avg_pool2d`` on CPUs."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2))
    rows = x[..., 0::2, :] + x[..., 1::2, :]
    return rows[..., 0::2] + rows[..., 1::2]


def fill_holes(x: torch.Tensor, valid: torch.Tensor, sync: bool = False, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Push-pull fill of ``(B, 1, H, W)`` maps that are 0 where not ``valid`` (as
    ``normalize_depth`` leaves them): each hole takes the average of the measurements of the
    finest 2ⁿ×2ⁿ cell around it that has any, blended bilinearly between cells; a map with no
    measurement is 0. The pyramid goes down to 1×1, so nothing waits on the device;
    ``sync=True`` stops at the first level where every cell has a measurement (the same
    result, cheaper, one host sync a level). ``weight``: ``valid`` as ``x``'s dtype, where the
    caller has it. An empty batch comes back as it is."""
    if x.numel() == 0:
        return x
    levels = [(x, weights(valid, x.dtype) if weight is None else weight)]  # (sum of measured values, count of measurements) per cell
    while max(levels[-1][0].shape[-2:]) > 1 and (len(levels) == 1 or not (sync and bool((levels[-1][1] > 0).all()))):
        xs, ws = levels[-1]
        levels.append((_sum2(xs), _sum2(ws)))
    xs, ws = levels[-1]
    filled = torch.where(ws > 0, xs / ws.clamp_min(1), torch.zeros_like(xs))
    if len(levels) == 1:
        return torch.where(valid, x, filled)
    for xs, ws in reversed(levels[1:-1]):
        up = _bilinear(filled, xs.shape[-2:], antialias=False)
        filled = torch.where(ws > 0, xs / ws.clamp_min(1), up)
    # full resolution: measured pixels keep their value, so only the holes need the coarser level
    return torch.where(valid, x, _bilinear(filled, x.shape[-2:], antialias=False))


@functools.lru_cache(maxsize=64)
def _axis_weights(n_in: int, n_out: int, antialias: bool, dtype: torch.dtype) -> torch.Tensor:
    """``(n_out, n_in)`` CPU weights of ``F.interpolate``'s bilinear resize along one axis (half-pixel
    centres), read off by resizing an identity with it: row ``i`` weighs the inputs of output ``i``."""
    eye = torch.eye(n_in, dtype=dtype, device="cpu").view(n_in, 1, 1, n_in)
    out = F.interpolate(eye, size=(1, n_out), mode="bilinear", align_corners=False, antialias=antialias)
    return out.view(n_in, n_out).T.contiguous()


# The dense weights do (input ÷ output) times the work of F.interpolate's taps along an axis when
# shrinking, input ÷ 2 when growing; BLAS pays that back where the smaller side is at most this.
MATMUL_SIDE = 128


def _bilinear(x: torch.Tensor, size: tuple[int, int], antialias: bool) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=antialias)`` of
    ``(B, C, H, W)``. Float maps on a CPU whose smaller side, in or out, is at most ``MATMUL_SIDE``
    on both axes (token grids, training crops) go through two matrix products with its very
    weights (``_axis_weights``): 1.5–10× faster than its kernels there, equal within two ulps."""
    *lead, h, w = x.shape
    if (x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64)
            or max(min(h, size[0]), min(w, size[1])) > MATMUL_SIDE):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    out = x.reshape(-1, h, w)  # (B·C, H, W)
    if w != size[1]:
        out = out @ _axis_weights(w, size[1], antialias, x.dtype).T
    if h != size[0]:
        out = _axis_weights(h, size[0], antialias, x.dtype) @ out
    return out.view(*lead, *size)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``(B, C, H, W)``, anti-aliased when shrinking. An empty batch is not
    handed to the kernel: CUDA's anti-aliased one fails on it ("invalid argument")."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.numel() == 0:
        return x.new_empty((*x.shape[:-2], *size))
    return _bilinear(x, size, antialias=True)
