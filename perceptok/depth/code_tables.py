"""Integer-coded depth maps (``perceptok.io.DepthCodes``: code ``k`` stands for ``table[k]``)
normalised per code instead of per pixel: ``normalize_codes`` gives exactly what
``perceptok.depth.normalize.normalize_depth`` gives for ``table[codes]``, from a histogram of each
map's codes (linear time, no sort) and one table lookup a pixel.

Axis legend: ``B`` maps, ``H, W`` pixels, ``P = H·W``, ``K`` codes of the table.
"""

from __future__ import annotations

import dataclasses
import functools
import weakref

import torch
import torch.nn.functional as F

from perceptok.depth.normalize import (
    Normalized, percentiles_at, relative, percentile_sample, percentile_stride, check_kind, stats_dtype, to_inverse, valid_mask, work_dtype,
)


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

        counts = code_histograms(flat, percentile_stride(flat.shape[1]), k)  # (B, K'), K' one past the largest code
        if isinstance(view.order, torch.Tensor):  # a sorted table ranks every code
            counts = F.pad(counts, (0, k - counts.shape[1]))
        else:
            # Codes above the largest present count nothing, and the rest of a monotonic table
            # keeps its order: its prefix serves, with every per-code step a fraction of the work
            # (depth in millimetres uses a few thousand of 65,536 codes). The same numbers.
            k = counts.shape[1]
            view = view.prefix(k)
    else:  # one histogram for the batch, each map's codes shifted into its own rows
        counts = torch.bincount(percentile_sample(_table_rows(flat, k)).flatten(), minlength=b * k).view(b, k)
    counts = counts * view.ok  # (B, K)
    cum = _ranked(counts, view.order).cumsum(1)  # (B, K), codes by inverse depth
    n = cum[:, -1:]  # (B, 1)
    at = lambda r: view.ascending[torch.searchsorted(cum, r, right=True).clamp_max(k - 1)]  # noqa: E731
    low, high = percentiles_at(n, at, view.ascending.dtype)
    rel_t = relative(view.inverse.expand(b, k), low, high, view.ok.expand(b, k))  # (B, K)
    lookup = CodeLookup(codes, torch.where(view.ok, rel_t, -1.0), n[:, 0] if percentile_stride(flat.shape[1]) == 1 else None)
    rows = functools.cache(lambda: _table_rows(flat, k).view(-1))  # made where a pixel is looked up here
    look = lambda x: x.reshape(-1).index_select(0, rows()).view(codes.shape)  # noqa: E731
    signed = functools.cache(lambda: look(lookup.signed))  # one lookup for both: -1 marks an invalid code
    return Normalized(lambda: signed().clamp_min(0), lambda: signed() >= 0, low, high,
                      lambda: look(view.inverse.expand(b, k)), lookup)
