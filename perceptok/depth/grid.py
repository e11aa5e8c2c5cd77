"""``GridDepthTokenizer``: what every depth tokenizer shares (AURORA paper §3.1, "depth perception
tokens"): input forms, normalisation, hole handling, token grids, restoration in the input's
units, and the text. ``DepthTokenizer`` (the VQ-VAE) and ``PooledDepthTokenizer`` (the pooled
baseline) fill in how a grid of features becomes ids and back.

Axis legend: ``B`` maps, ``H, W`` pixels, ``N`` tokens per map (100 for the default).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from perceptok.base import PerceptionTokenizer, TokenizerOutput
from perceptok.depth.batching import CHUNK, as_tensor, groups, table_keys
from perceptok.depth.code_tables import normalize_codes
from perceptok.depth.normalize import DepthStats, Normalized, check_kind, from_inverse, normalize_depth, stats_dtype
from perceptok.depth.outputs import DepthEncoding, DepthText, PreparedDepth
from perceptok.depth.resample import resize
from perceptok.depth.text import SpanGrammar
from perceptok.io.depth_files import DepthCodes, DepthMap


class GridDepthTokenizer(PerceptionTokenizer):
    """What every depth tokenizer shares: input forms, normalisation, hole handling, grids,
    restoration in the input's units, and the ``<PREFIX_START>…<PREFIX_END>`` text.

    Subclasses turn relative maps of one grid into features (``_features``), features into ids
    (``_ids``) and ids back into maps (``_decode_grid``). Their configs have ``grids``,
    ``cell_size``, ``codebook_size`` and ``token_prefix``. Maps are processed on their own
    device, in batches of equal size; ids and decoded maps come back on the input's device.
    """

    def __init__(self, config: Any):
        super().__init__(config)
        self.text = SpanGrammar(config)

    @property
    def vocab(self) -> list[str]:
        return self.text.vocab

    @property
    def start_token(self) -> str:
        return self.text.start

    @property
    def end_token(self) -> str:
        return self.text.end

    @property
    def tokens_per_map(self) -> int:
        return self.config.tokens_per_map

    @property
    def grid_markers(self) -> list[str]:
        """Tokens that may follow the start token to name a grid other than the first."""
        return list(self.text.markers)

    @property
    def special_tokens(self) -> list[str]:
        return [*super().special_tokens, *self.grid_markers]

    @abc.abstractmethod
    def _features(self, norm: Normalized, grid: tuple[int, int]) -> torch.Tensor:
        """Normalised maps of one grid (``norm.rel`` ``(b, H, W)`` in [0, 1], 0 where invalid, and
        ``norm.valid``) → what ``_ids`` needs, ``(b, C, h, w)`` of a size set by the grid (pixel
        work, on their device)."""

    @abc.abstractmethod
    def _ids(self, features: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Features ``(b, C, h, w)`` of one grid → ids ``(b, N)``."""

    @abc.abstractmethod
    def _decode_grid(self, ids: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Ids ``(b, N)`` → relative maps ``(b, 1, H', W')`` in [0, 1], float32 or wider."""

    def default_size(self, grid: tuple[int, int]) -> tuple[int, int]:
        return grid[0] * self.config.cell_size, grid[1] * self.config.cell_size
    # --- inputs -----------------------------------------------------------------------------

    def _as_maps(self, depth: Any, kind: str,
                 valid: Any) -> tuple[list[torch.Tensor | DepthCodes], list[torch.Tensor | None], str, bool]:
        """Normalise the accepted input forms to lists of ``(H, W)`` maps (or ``DepthCodes``) and
        masks, device and dtype kept."""
        if isinstance(depth, (str, bytes, os.PathLike)):
            raise TypeError(f"depth must be a tensor, an array, a DepthMap, DepthCodes or a list of them, got the path {depth!r}; "
                            "read files with perceptok.io.read_depth")
        if isinstance(depth, (DepthMap, DepthCodes)):
            depth, single = [depth], True
        else:
            single = False
        if isinstance(depth, Sequence) and depth and all(isinstance(d, (DepthMap, DepthCodes)) for d in depth):
            kinds = {d.kind for d in depth}
            if len(kinds) > 1:
                raise ValueError(f"a batch must share one depth kind, got {sorted(kinds)}; encode them separately")
            maps = [d if isinstance(d, DepthCodes) else d.values for d in depth]
            return maps, [None if isinstance(d, DepthCodes) else d.valid for d in depth], kinds.pop(), single
        if isinstance(depth, (torch.Tensor, np.ndarray)):
            t = as_tensor(depth)
            if t.ndim not in (2, 3) or 0 in t.shape:
                raise ValueError(f"depth must be one (H, W) map or a (B, H, W) batch, got shape {tuple(t.shape)}")
            single = t.ndim == 2
            maps = [t] if single else list(t)
        elif isinstance(depth, Sequence) and depth:
            maps = [as_tensor(d if isinstance(d, torch.Tensor) else np.asarray(d)) for d in depth]
            if any(m.ndim != 2 or 0 in m.shape for m in maps):
                raise ValueError(f"each map of a batch must be a non-empty (H, W) array, got {[tuple(m.shape) for m in maps]}")
        else:
            raise TypeError(f"depth must be a tensor, an array, a DepthMap, DepthCodes or a list of them, got {type(depth).__name__}")
        if valid is None:
            valids: list[Any] = [None] * len(maps)
        else:
            v = as_tensor(valid)
            valids = [v] if single else list(v)
            if len(valids) != len(maps) or any(a.shape != m.shape for a, m in zip(valids, maps)):
                raise ValueError("valid must have the same shape as depth")
        if any(m.dtype.is_complex or m.dtype == torch.bool for m in maps):
            raise TypeError(f"depth must hold real numbers, got {maps[0].dtype}")
        return maps, valids, check_kind(kind), single

    def _normalize(self, maps: list[torch.Tensor | DepthCodes], valids: list[torch.Tensor | None], kind: str,
                   device: torch.device) -> Normalized:
        """One group of equally sized maps (all values, or all codes of one table) → ``Normalized``."""
        def batch(tensors: list[torch.Tensor]) -> torch.Tensor:  # (b, H, W); one map needs no copy
            return tensors[0].to(device)[None] if len(tensors) == 1 else torch.stack([t.to(device) for t in tensors])

        if isinstance(maps[0], DepthCodes):
            return normalize_codes(batch([m.codes for m in maps]), maps[0].table, kind)
        return normalize_depth(batch(maps), kind, batch(valids) if valids[0] is not None else None)

    # --- encode / decode ----------------------------------------------------------------------

    @torch.no_grad()
    def prepare(self, depth: Any, kind: str = "metric", valid: Any = None) -> PreparedDepth:
        """The part of ``encode`` that works on pixels (normalisation, hole filling, resizing),
        on the input's device; the inputs as for ``encode``, which is
        ``encode_prepared(prepare(...))``. Run it where the data are, e.g. in DataLoader
        workers, and join the results with ``PreparedDepth.cat``."""
        maps, valids, kind, single = self._as_maps(depth, kind, valid)
        first = maps[0]
        device = first.codes.device if isinstance(first, DepthCodes) else first.device
        sizes = [tuple(m.codes.shape if isinstance(m, DepthCodes) else m.shape) for m in maps]
        features: list[Any] = [None] * len(maps)
        low = torch.empty(len(maps), dtype=stats_dtype(device), device=device)
        high = torch.empty_like(low)
        for (shape, _), chunk in groups(list(zip(sizes, table_keys(maps))), CHUNK):
            norm = self._normalize([maps[i] for i in chunk], [valids[i] for i in chunk], kind, device)
            counts = norm.counts()
            if bool((counts < 2).any()):
                j = int(torch.nonzero(counts < 2)[0, 0])
                raise ValueError(
                    f"map {chunk[j]} ({shape}) has {int(counts[j])} valid pixels; a map needs measurements "
                    "(0, NaN and ±inf are invalid). Check the encoding, scale and kind it was read with"
                )
            for i, f in zip(chunk, self._features(norm, self.config.choose_grid(*shape))):
                features[i] = f
            rows = torch.tensor(chunk, device=device)
            low[rows], high[rows] = norm.low.to(low.dtype), norm.high.to(high.dtype)
        stats = DepthStats(low, high, kind, sizes, [self.config.choose_grid(*size) for size in sizes])
        return PreparedDepth(features, stats, single)

    @torch.no_grad()
    def encode_prepared(self, prepared: PreparedDepth) -> DepthEncoding:
        """The codebook step of ``encode``: maps of one grid go through the network together, on
        the tokenizer's device; ids come back on the device the features are on."""
        device = prepared.stats.low.device
        ids = torch.empty(len(prepared.features), self.tokens_per_map, dtype=torch.long, device=device)
        for grid, chunk in groups(prepared.stats.grids, CHUNK):
            x = torch.stack([prepared.features[i] for i in chunk])
            ids[torch.tensor(chunk, device=device)] = self._ids(x, grid).to(device)
        return DepthEncoding(ids=ids[0] if prepared.single else ids, stats=prepared.stats)

    def encode(self, depth: Any, kind: str = "metric", valid: Any = None) -> DepthEncoding:
        """Depth → ids.

        Args:
            depth: one ``(H, W)`` map, a ``(B, H, W)`` batch, a list of maps of any sizes, or
                ``DepthMap``s or ``DepthCodes`` from ``perceptok.io`` (which carry their kind
                and validity); any real dtype, on any device (normalisation runs there; the
                network on the tokenizer's device; ids come back on the input's device).
            kind: "metric" (metres, smaller = closer), "disparity" (larger = closer) or
                "relative_inverse" (Depth Anything-like, larger = closer).
            valid: optional bool mask(s) shaped like ``depth``; 0, NaN and ±inf are invalid anyway.
        """
        return self.encode_prepared(self.prepare(depth, kind, valid))

    def _check_ids(self, ids: Any) -> tuple[torch.Tensor, bool]:
        if isinstance(ids, TokenizerOutput):
            ids = ids.ids
        if ids is None:
            raise TypeError("ids must be integer token ids (a tensor, an array or a list), got None")
        ids = as_tensor(ids)
        n = self.tokens_per_map
        if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.ndim not in (1, 2) or ids.shape[-1] != n:
            raise ValueError(f"expected integer ids of shape ({n},) or (B, {n}), got {ids.dtype} {tuple(ids.shape)}")
        if ids.numel() and bool(((ids < 0) | (ids >= self.config.codebook_size)).any()):
            raise ValueError(f"ids must lie in 0..{self.config.codebook_size - 1}")
        return (ids[None] if ids.ndim == 1 else ids).long(), ids.ndim == 1

    def _grids(self, ids: Any, grids: Any, n: int) -> list[tuple[int, int]] | None:
        """Per-map grids from an argument (one grid or one per map) or what ``ids`` carries."""
        if grids is None:
            grids = ids.stats.grids if isinstance(ids, DepthEncoding) else ids.grids if isinstance(ids, DepthText) else None
        if grids is None:
            return None
        grids = [tuple(grids)] * n if len(grids) == 2 and isinstance(grids[0], int) else [tuple(g) for g in grids]
        if len(grids) != n or any(g not in self.config.grids for g in grids):
            raise ValueError(f"grids must be one of {list(self.config.grids)} or one per map ({n}), got {grids}")
        return grids

    @torch.no_grad()
    def decode(
        self, ids: Any, size: tuple[int, int] | None = None, stats: DepthStats | None = None,
        grids: Any = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Ids → maps, float32 (or wider), on the ids' device.

        Without ``stats``: relative inverse depth in [0, 1] (1 = nearest). With ``stats`` (from
        ``encode``): depth in the input's own kind and units. ``size=(H, W)`` sets the output size
        (default: the input's size from ``stats``, else the network's input size for the grid).
        The grid comes from ``stats``, else ``grids`` (one, or one per map), else what ``ids``
        carries (a ``DepthText`` from ``parse``), else the grid that suits ``size``, else the
        first. ``(N,)`` ids give ``(H, W)``; ``(B, N)`` give ``(B, H, W)``, or a list where sizes differ.
        """
        given = grids
        batch, single = self._check_ids(ids)
        cfg = self.config
        if size is not None:
            size = tuple(int(s) for s in size)
            if len(size) != 2 or min(size) < 1:
                raise ValueError(f"size must be (H, W) with both at least 1, got {size}")
        if stats is not None and len(stats.sizes) != len(batch):
            raise ValueError(f"stats describe {len(stats.sizes)} maps but ids hold {len(batch)}")
        grids = stats.grids if stats is not None else self._grids(ids, given, len(batch))
        if grids is None:
            grids = [cfg.choose_grid(*size) if size else cfg.grids[0]] * len(batch)
        targets = [size or (stats.sizes[i] if stats is not None else self.default_size(grids[i])) for i in range(len(batch))]
        outs: list[torch.Tensor] = [batch.new_empty(0)] * len(batch)
        for (grid, target), chunk in groups(list(zip(grids, map(tuple, targets))), CHUNK):
            rows = torch.tensor(chunk, device=batch.device)
            out = resize(self._decode_grid(batch[rows], grid), target)[:, 0].to(batch.device)  # (b, H, W)
            if stats is not None:  # in the output's precision: float64 broadcasting is several times slower on CPUs
                dtype = out.dtype if _fits(stats, rows, out.dtype) else stats.low.dtype  # else 1e-45 m overflows
                low, high = (t.to(batch.device, dtype)[rows, None, None] for t in (stats.low, stats.high))
                out = from_inverse(out.to(dtype) * (high - low) + low, stats.kind).to(out.dtype)
            for j, i in enumerate(chunk):
                outs[i] = out[j]
        if single:
            return outs[0]
        return torch.stack(outs) if len({o.shape for o in outs}) == 1 else outs

    # --- text -------------------------------------------------------------------------------

    def to_text(self, ids: Any, grids: Any = None, **kwargs: Any) -> str | list[str]:
        """Spans of ``ids`` (or of a ``DepthEncoding``, which knows each map's grid); a map on a
        grid other than the first gets that grid's marker after the start token."""
        batch, single = self._check_ids(ids)
        per_map = self._grids(ids, grids, len(batch)) or [None] * len(batch)
        texts = [self.text.render(row.tolist(), grid) for row, grid in zip(batch, per_map)]
        return texts[0] if single else texts

    def from_text(self, text: str | Sequence[str], strict: bool = True) -> torch.Tensor:
        """``(N,)`` ids of one span, ``(B, N)`` for a list. Lenient parsing pads a short span by
        repeating its last code and truncates a long one. ``parse`` also gives the grids."""
        return self.parse(text, strict).ids

    def parse(self, text: str | Sequence[str], strict: bool = True) -> DepthText:
        """Ids and grids of one span (or a list): ``decode(tok.parse(text))`` needs nothing else."""
        ids, grids = self.text.parse_many(text if isinstance(text, str) else list(text), strict)
        return DepthText(ids=ids, grids=grids)



def _fits(stats: DepthStats, rows: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether the inverse-depth range of these maps is well inside ``dtype``'s finite range.
    Checked on the host only: on an accelerator the answer would cost a sync on decode's hot
    path, so there units are restored in the statistics' (wide) dtype."""
    if stats.low.device.type != "cpu":
        return False
    limit = torch.finfo(dtype).max / 16
    bounds = torch.stack([stats.low, stats.high])[:, rows.cpu()]
    return bool((bounds.abs() < limit).all())
