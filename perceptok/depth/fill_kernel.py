"""``model_input`` on a CPU as one compiled loop a map (numba): the push-pull fill of
``resample.fill_holes`` and the two anti-aliased resizes of ``resample.resize``, without the
dozen full-resolution passes (and their temporaries) that the tensor version makes.

The tensor version is the definition; this is a faster route to the same numbers (within float
rounding: sums are taken in another order), tested against it. Per map: the 2×2 sums of the
pyramid (level 1 straight from the pixels, as ``_sum2`` adds them), down to the first level where
every cell has a measurement (which is what ``fill_holes(sync=True)`` stops at, and the same
result as going on); the fill back up, level by level and row by row, each empty cell (and at the
end each hole) taking the coarser level with the bilinear weights ``F.interpolate`` uses; then
the map and its validity are resized down the columns (whole rows of pixels at a time), then
along the rows. The weights of every resize are ``F.interpolate``'s own
(``resample._axis_weights``), passed in as bands: where each output's taps start, and their
weights. Each map is first written into two scratch planes, its values and validity, noting
whether it has holes on the way: copied (``_fill_resize``), or, for integer-coded maps, each
pixel looked up in its ``CodeLookup`` (``_look_up_resize``). Scratch arrays are kept per thread
and shape (allocated afresh, their page faults doubled the time). The inner loops are written to
vectorise: one output array a loop, unsigned indices for gathers, counts instead of early exits.
Importing this module imports numba (about a quarter of a second after torch); the loops compile
once, then are cached on disk.

Axis legend: ``B`` maps, ``H, W`` pixels, ``T`` taps of a band.
"""

from __future__ import annotations

import collections
import functools
import threading

import numba
import numpy as np
import torch

from perceptok.depth.code_tables import CodeLookup
from perceptok.depth.resample import _axis_weights

NUMPY = {torch.float32: np.float32, torch.float64: np.float64}  # the dtypes the loop is compiled for


@numba.njit(cache=True, nogil=True)
def _fill_row(values, valid, coarse, first, weights, cols):
    """The holes (``valid`` 0) of one row of a level take the next coarser level ``coarse``
    ``(hi, wi)`` upsampled with the bilinear weights of ``F.interpolate``: columns first, then
    rows, as the two matrix products take them. ``first`` and ``weights`` ``(2,)``: the row's
    first tap in ``coarse`` and its two weights; ``cols``: the columns' (first taps ``(W,)``,
    weights ``(W, 2)``)."""
    hi, wi = coarse.shape
    top, bottom = coarse[first], coarse[min(first + 1, hi - 1)]
    w0, w1 = weights[0], weights[1]
    start_c, up_c = cols
    for j in range(values.shape[0]):
        if valid[j] == 0:
            z0 = start_c[j]
            z1 = min(z0 + 1, wi - 1)
            c0, c1 = up_c[j, 0], up_c[j, 1]
            values[j] = w0 * (c0 * top[z0] + c1 * top[z1]) + w1 * (c0 * bottom[z0] + c1 * bottom[z1])


@numba.njit(cache=True, nogil=True)
def _fill_level(values, valid, lv, plan, filled):
    """The empty cells (``valid`` 0) of level ``lv`` ``(h, w)`` take level ``lv + 1``'s fill (in
    ``filled``), upsampled, row by row."""
    sizes, base, up_rows, up_cols, offsets = plan[:5]
    coarse = filled[base[lv + 1] : base[lv + 2]].reshape(sizes[lv + 1, 0], sizes[lv + 1, 1])
    r0, c0 = offsets[lv, 0], offsets[lv, 1]
    w = values.shape[1]
    cols = (up_cols[0][c0 : c0 + w], up_cols[1][c0 : c0 + w])
    for i in range(values.shape[0]):
        _fill_row(values[i], valid[i], coarse, up_rows[0][r0 + i], up_rows[1][r0 + i], cols)


@numba.njit(cache=True, nogil=True)
def _half(values, counts, out_values, out_counts, zeros):
    """Sums of 2×2 cells of ``values`` and ``counts`` ``(h, w)`` (odd sizes padded with zeros, the
    ``zeros`` row) into ``out_*`` ``(⌈h/2⌉, ⌈w/2⌉)``, added in ``_sum2``'s order: the two rows
    first."""
    h, w = values.shape
    pairs = w // 2
    for i in range(out_values.shape[0]):
        top, ctop = values[2 * i], counts[2 * i]
        if 2 * i + 1 < h:
            under, cunder = values[2 * i + 1], counts[2 * i + 1]
        else:
            under, cunder = zeros[:w], zeros[:w]
        row, crow = out_values[i], out_counts[i]
        for j in range(pairs):
            z = 2 * j
            row[j] = (top[z] + under[z]) + (top[z + 1] + under[z + 1])
            crow[j] = (ctop[z] + cunder[z]) + (ctop[z + 1] + cunder[z + 1])
        if w % 2:
            row[pairs] = (top[w - 1] + under[w - 1]) + 0
            crow[pairs] = ctop[w - 1] + cunder[w - 1]


@numba.njit(cache=True, nogil=True)
def _resize_planes(holes, plan, work, out):
    """One map whose values (0 at holes) and validity (0/1) are in the workspace's planes
    ``full`` and ``fullv`` ``(H, W)`` → ``out`` ``(2, oh, ow)``: its holes filled (where ``holes``),
    resized and scaled to [-1, 1], and its validity resized.

    ``plan`` (``_plan``): ``sizes`` ``(L, 2)``, the pyramid's levels, full resolution first;
    ``base`` ``(L + 1,)``, where each level starts in the flat pyramid; for the upsampling from
    level ``l + 1`` to ``l``, rows ``offsets[l, 0]:`` of the bands ``up_rows`` and ``offsets[l, 1]:``
    of ``up_cols`` (every level's, end to end) hold each output's first tap and its two weights;
    the resize's bands, ``(starts (oh,), weights (oh, T))`` per axis. ``work``
    (``_workspace``): arrays to write in, so that no call allocates (and page-faults) anew."""
    sizes, base, out_r, out_c = plan[0], plan[1], plan[5], plan[6]
    pyramid, planes, halves, zeros = work
    sums, counts, filled = pyramid[0], pyramid[1], pyramid[2]
    full, fullv = planes[0], planes[1]
    down, downv = halves[0], halves[1]  # resized along the columns
    h, w = full.shape
    levels = sizes.shape[0]
    rs, rw = out_r
    cs, cw = out_c
    oh, ow = rs.shape[0], cs.shape[0]
    one = full.dtype.type(1)
    if holes and levels > 1:  # (a 1×1 map has nothing to fill from: its hole stays 0)
        level = lambda lv: (sums[base[lv] : base[lv + 1]].reshape(sizes[lv, 0], sizes[lv, 1]),  # noqa: E731
                            counts[base[lv] : base[lv + 1]].reshape(sizes[lv, 0], sizes[lv, 1]))
        _half(full, fullv, *level(1), zeros)  # level 1 from the pixels
        lv = 1
        while max(sizes[lv, 0], sizes[lv, 1]) > 1 and counts[base[lv] : base[lv + 1]].min() <= 0:
            _half(*level(lv), *level(lv + 1), zeros)  # the next level, while this one has an empty cell
            lv += 1
        coarsest = lv
        for lv in range(lv, 0, -1):  # each level: its cells' means, and below the coarsest the fill of its empty cells
            for k in range(base[lv], base[lv + 1]):  # an empty cell's sum is 0: its mean is 0
                filled[k] = sums[k] / max(counts[k], one)
            if lv < coarsest:
                _fill_level(filled[base[lv] : base[lv + 1]].reshape(sizes[lv, 0], sizes[lv, 1]),
                            counts[base[lv] : base[lv + 1]].reshape(sizes[lv, 0], sizes[lv, 1]), lv, plan, filled)
        _fill_level(full, fullv, 0, plan, filled)  # the image: measured pixels keep their value
    for p in range(oh):  # along the columns first: whole rows of pixels at a time (contiguous)
        d, dv = down[p], downv[p]
        for j in range(w):
            d[j], dv[j] = 0.0, 0.0
        for t in range(rw.shape[1]):
            y = rs[p] + t
            if y < h:  # one array a loop: these vectorise better than both in one
                weight, frow, vrow = rw[p, t], full[y], fullv[y]
                for j in range(w):
                    d[j] += weight * frow[j]
                for j in range(w):
                    dv[j] += weight * vrow[j]
    for p in range(oh):
        d, dv = down[p], downv[p]
        for q in range(ow):
            acc, accv = d[0] * 0, d[0] * 0  # in the maps' dtype
            for t in range(cw.shape[1]):
                z = cs[q] + t
                if z < w:
                    acc += cw[q, t] * d[z]
                    accv += cw[q, t] * dv[z]
            out[0, p, q] = acc * 2 - 1
            out[1, p, q] = accv


@numba.njit(cache=True, nogil=True)
def _fill_resize(x, valid, plan, work, out):
    """``x`` ``(B, H, W)`` (0 where not ``valid``) and ``valid`` ``(B, H, W)`` → ``out``
    ``(B, 2, oh, ow)``: each map copied into the planes, then ``_resize_planes``."""
    full, fullv = work[1][0], work[1][1]
    for b in range(x.shape[0]):
        bad = 0
        for i in range(x.shape[1]):
            frow, vrow, xrow, mask = full[i], fullv[i], x[b, i], valid[b, i]
            for j in range(x.shape[2]):
                frow[j], vrow[j] = xrow[j], mask[j]
                bad += not mask[j]
        _resize_planes(bad > 0, plan, work, out[b])


@numba.njit(cache=True, nogil=True)
def _look_up_resize(codes, signed, plan, work, out):
    """Integer-coded maps ``codes`` ``(B, H, W)`` and, per map, each code's relative depth
    ``signed`` ``(B, K)`` (negative for an invalid code) → ``out`` ``(B, 2, oh, ow)``: each map
    looked up into the planes (``clamp_min(0)`` and ``>= 0`` of the value, as
    ``normalize_codes`` defines them), then ``_resize_planes``. Every code must lie in
    ``0..K-1``, as ``normalize_codes``' histogram has checked (nothing is checked here)."""
    full, fullv = work[1][0], work[1][1]
    for b in range(codes.shape[0]):
        holes = False
        table = signed[b]
        for i in range(codes.shape[1]):
            row, frow = codes[b, i], full[i]
            for j in range(codes.shape[2]):  # a loop of its own, with unsigned indices: it vectorises (gathers)
                frow[j] = table[np.uint32(row[j])]
            holes = _split_signs(frow, fullv[i]) or holes
        _resize_planes(holes, plan, work, out[b])


@numba.njit(cache=True, nogil=True)
def _split_signs(values, valid):
    """Looked-up values (negative: an invalid code) → ``values`` clamped at 0 and ``valid`` as
    0/1 (``clamp_min(0)`` and ``>= 0``, as ``normalize_codes`` defines them); whether any is
    invalid."""
    zero, one = values.dtype.type(0), values.dtype.type(1)
    bad = 0
    for j in range(values.shape[0]):
        v = values[j]
        bad += v < zero
        valid[j] = one if v >= zero else zero
        values[j] = max(v, zero)
    return bad > 0


def _band(n_in: int, n_out: int, antialias: bool, dtype: torch.dtype,
          taps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``F.interpolate``'s weights along one axis as a band: each output's first tap ``(n_out,)``
    and ``taps`` weights from there ``(n_out, T)`` (None: as many as the widest output needs)."""
    dense = _axis_weights(n_in, n_out, antialias, dtype).numpy()  # (n_out, n_in)
    nonzero = dense != 0
    first = nonzero.argmax(1)
    last = n_in - 1 - nonzero[:, ::-1].argmax(1)
    width = int((last - first).max()) + 1
    taps = width if taps is None else taps
    if width > taps:
        raise AssertionError(f"a resize {n_in} → {n_out} has {width} taps, more than the {taps} the band holds")
    start = np.clip(first, 0, max(n_in - taps, 0))
    index = np.minimum(start[:, None] + np.arange(taps), n_in - 1)
    weights = np.where(start[:, None] + np.arange(taps) < n_in, np.take_along_axis(dense, index, 1), 0)
    return start.astype(np.int64), np.ascontiguousarray(weights)


@functools.lru_cache(maxsize=64)
def _plan(h: int, w: int, size: tuple[int, int], dtype: torch.dtype) -> tuple:
    """What ``_fill_resize`` needs besides the maps, for ``(h, w)`` maps resized to ``size``."""
    sizes = [(h, w)]
    while max(sizes[-1]) > 1:
        sizes.append(((sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2))
    base = np.concatenate([[0, 0], np.cumsum([a * b for a, b in sizes[1:]])]).astype(np.int64)
    ups = [(_band(sizes[lv + 1][0], sizes[lv][0], False, dtype, 2), _band(sizes[lv + 1][1], sizes[lv][1], False, dtype, 2))
           for lv in range(len(sizes) - 1)]
    empty = (np.zeros(0, np.int64), np.zeros((0, 2), NUMPY[dtype]))  # a 1×1 map has no level to upsample

    def end_to_end(bands: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        return tuple(np.concatenate(parts) for parts in zip(*(bands or [empty])))

    offsets = np.cumsum([(0, 0)] + [(len(r[0]), len(c[0])) for r, c in ups[:-1]], axis=0).astype(np.int64)
    return (np.array(sizes, np.int64), base, end_to_end([r for r, _ in ups]), end_to_end([c for _, c in ups]), offsets,
            _band(h, size[0], True, dtype), _band(w, size[1], True, dtype))


_WORK = threading.local()  # per thread: the loops' scratch arrays of the last few shapes


def _workspace(plan: tuple, dtype: torch.dtype) -> tuple:
    """Scratch arrays for ``plan``'s shapes, kept per thread: the pyramid's sums, counts and fills
    (flat), the planes of one map's values and validity ``(2, H, W)``, the two after the resize
    along the columns ``(2, oh, W)``, and a row of zeros (an odd height's padding)."""
    sizes, base, out_rows = plan[0], plan[1], plan[5][0]
    (h, w), key = sizes[0], (tuple(sizes[0]), len(out_rows), dtype)
    cache = _WORK.__dict__.setdefault("arrays", collections.OrderedDict())
    if key not in cache:
        t = NUMPY[dtype]
        cache[key] = (np.empty((3, int(base[-1])), t), np.empty((2, h, w), t), np.empty((2, len(out_rows), w), t),
                      np.zeros(w, t))
        while len(cache) > 4:
            cache.popitem(last=False)
    cache.move_to_end(key)
    return cache[key]


def model_input_codes_cpu(codes: CodeLookup, size: tuple[int, int]) -> torch.Tensor:
    """``model_input`` of integer-coded maps straight from their ``CodeLookup`` (``normalize_codes``
    on a CPU): each map's pixels looked up into the planes as they are filled (the same numbers
    as ``model_input_cpu`` of the looked-up maps, bit for bit)."""
    b, h, w = codes.codes.shape
    plan = _plan(h, w, tuple(size), codes.signed.dtype)
    out = np.empty((b, 2, *size), NUMPY[codes.signed.dtype])
    _look_up_resize(codes.codes.numpy(), codes.signed.numpy(), plan, _workspace(plan, codes.signed.dtype), out)
    return torch.from_numpy(out)


def model_input_cpu(rel: torch.Tensor, valid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``model_input(rel, valid, size)`` for float32 or float64 maps ``(B, 1, H, W)`` on a CPU."""
    b, _, h, w = rel.shape
    plan = _plan(h, w, tuple(size), rel.dtype)
    out = np.empty((b, 2, *size), NUMPY[rel.dtype])
    _fill_resize(rel[:, 0].contiguous().numpy(), valid[:, 0].contiguous().numpy(), plan, _workspace(plan, rel.dtype), out)
    return torch.from_numpy(out)
