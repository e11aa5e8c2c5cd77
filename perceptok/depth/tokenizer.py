"""``DepthTokenizer``: depth maps ⇄ VQ-VAE codes (AURORA paper §3.1, "depth perception tokens").

Axis legend: ``B`` maps, ``H, W`` pixels, ``N`` tokens per map (100 for the default).

Deviations from the original, each measured in BENCHMARKS.md: masked, outlier-robust
normalisation instead of 8-bit min-max maps; a validity channel and push-pull hole filling
instead of constant fill; aspect-adaptive token grids instead of stretching to a square; FSQ
codes (32 levels × 4 shapes) whose encoder starts as the pooled-grid baseline instead of an EMA
codebook that collapses; a small 40×40 network input and a level + detail decoder instead of
320×320 and a transposed-conv stack, so training takes many more steps in the same time.
"""

from __future__ import annotations

import abc
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from perceptok.base import PerceptionTokenizer, TokenizerOutput
from perceptok.depth.config import PRESETS, DepthTokenizerConfig
from perceptok.depth.model import DepthVQVAE
from perceptok.depth.normalize import (
    DepthStats, check_kind, fill_holes, from_inverse, resize, robust_range, to_inverse, valid_mask,
)
from perceptok.depth.text import SpanGrammar
from perceptok.io.depth_files import DepthMap
from perceptok.registry import register_preset, register_tokenizer

CHUNK = 64  # maps per network call


@dataclasses.dataclass
class DepthEncoding(TokenizerOutput):
    """Encoded depth maps.

    Attributes:
        ids: ``(N,)`` for one map, ``(B, N)`` for a batch; long.
        stats: the per-map normalisation; pass it to ``decode`` to get depth in the input's units.
    """

    stats: DepthStats


def model_input(rel: torch.Tensor, valid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Network input ``(B, 2, *size)`` from relative maps and validity masks ``(B, 1, H, W)``:
    holes filled, resized, scaled to [-1, 1], with the resized validity as a second channel."""
    filled = fill_holes(rel, valid)
    return torch.cat([resize(filled, size) * 2 - 1, resize(valid.float(), size)], dim=1)


class GridDepthTokenizer(PerceptionTokenizer):
    """What every depth tokenizer shares: input forms, normalisation, hole handling, grids,
    restoration in the input's units, and the ``<PREFIX_START>…<PREFIX_END>`` text.

    Subclasses turn relative maps of one grid into ids (``_encode_grid``) and back
    (``_decode_grid``). Their configs have ``grids``, ``cell_size``, ``codebook_size`` and
    ``token_prefix``.
    """

    def __init__(self, config: Any):
        super().__init__(config)
        self.text = SpanGrammar(config.token_prefix, config.tokens_per_map, config.codebook_size)
        self._vocab = [f"<{config.token_prefix}_{i}>" for i in range(config.codebook_size)]

    @property
    def vocab(self) -> list[str]:
        return self._vocab

    @property
    def start_token(self) -> str:
        return self.text.start

    @property
    def end_token(self) -> str:
        return self.text.end

    @property
    def tokens_per_map(self) -> int:
        return self.config.tokens_per_map

    @abc.abstractmethod
    def _encode_grid(self, rels: list[torch.Tensor], valids: list[torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
        """Relative maps ``(H, W)`` in [0, 1] (0 where invalid) and masks of one grid → ids ``(b, N)``."""

    @abc.abstractmethod
    def _decode_grid(self, ids: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Ids ``(b, N)`` → relative maps ``(b, 1, H', W')`` in [0, 1]."""

    def default_size(self, grid: tuple[int, int]) -> tuple[int, int]:
        return grid[0] * self.config.cell_size, grid[1] * self.config.cell_size
    # --- inputs -----------------------------------------------------------------------------

    def _as_maps(self, depth: Any, kind: str, valid: Any) -> tuple[list[torch.Tensor], list[torch.Tensor], str, bool]:
        """Normalise the accepted input forms to lists of ``(H, W)`` maps and masks."""
        if isinstance(depth, (str, bytes, os.PathLike)):
            raise TypeError(f"depth must be a tensor, an array, a DepthMap or a list of them, got the path {depth!r}; "
                            "read files with perceptok.io.read_depth")
        if isinstance(depth, DepthMap):
            return [depth.values], [depth.valid], depth.kind, True
        if isinstance(depth, Sequence) and depth and all(isinstance(d, DepthMap) for d in depth):
            kinds = {d.kind for d in depth}
            if len(kinds) > 1:
                raise ValueError(f"a batch must share one depth kind, got {sorted(kinds)}; encode them separately")
            return [d.values for d in depth], [d.valid for d in depth], kinds.pop(), False
        if isinstance(depth, (torch.Tensor, np.ndarray)):
            t = torch.as_tensor(depth)
            if t.ndim not in (2, 3) or 0 in t.shape:
                raise ValueError(f"depth must be one (H, W) map or a (B, H, W) batch, got shape {tuple(t.shape)}")
            single = t.ndim == 2
            maps = [t] if single else list(t)
        elif isinstance(depth, Sequence) and depth:
            maps, single = [torch.as_tensor(np.asarray(d)) for d in depth], False
            if any(m.ndim != 2 or 0 in m.shape for m in maps):
                raise ValueError(f"each map of a batch must be a non-empty (H, W) array, got {[tuple(m.shape) for m in maps]}")
        else:
            raise TypeError(f"depth must be a tensor, an array, a DepthMap or a list of them, got {type(depth).__name__}")
        if valid is None:
            valids: list[Any] = [None] * len(maps)
        else:
            v = torch.as_tensor(valid)
            valids = [v] if single else list(v)
            if any(a is not None and a.shape != m.shape for a, m in zip(valids, maps)):
                raise ValueError("valid must have the same shape as depth")
        if maps[0].dtype.is_complex or maps[0].dtype == torch.bool:
            raise TypeError(f"depth must hold real numbers, got {maps[0].dtype}")
        return [m.float() for m in maps], valids, check_kind(kind), single

    # --- encode / decode ----------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, depth: Any, kind: str = "metric", valid: Any = None) -> DepthEncoding:
        """Depth → ids.

        Args:
            depth: one ``(H, W)`` map, a ``(B, H, W)`` batch, a list of maps of any sizes, or
                ``DepthMap``s from ``perceptok.io`` (which carry their kind and validity).
            kind: "metric" (metres, smaller = closer), "disparity" (larger = closer) or
                "relative_inverse" (Depth Anything-like, larger = closer).
            valid: optional bool mask(s) shaped like ``depth``; 0, NaN and ±inf are invalid anyway.
        """
        maps, valids, kind, single = self._as_maps(depth, kind, valid)
        lows, highs, grids, rels, oks = [], [], [], [], []
        for i, (d, v) in enumerate(zip(maps, valids)):
            ok = valid_mask(d, kind, v)
            if int(ok.sum()) < 2:
                raise ValueError(
                    f"map {i} ({tuple(d.shape)}) has {int(ok.sum())} valid pixels; a map needs measurements "
                    "(0, NaN and ±inf are invalid). Check the encoding, scale and kind it was read with"
                )
            inv = to_inverse(torch.where(ok, d, torch.ones_like(d)), kind)
            low, high = robust_range(inv, ok)
            rels.append(((inv - low) / (high - low)).clamp(0, 1).where(ok, torch.zeros_like(inv)))
            oks.append(ok)
            lows.append(low), highs.append(high), grids.append(self.config.choose_grid(*d.shape))
        ids = torch.zeros(len(maps), self.tokens_per_map, dtype=torch.long)
        for grid in set(grids):
            index = [i for i, g in enumerate(grids) if g == grid]
            for start in range(0, len(index), CHUNK):
                chunk = index[start : start + CHUNK]
                ids[chunk] = self._encode_grid([rels[i] for i in chunk], [oks[i] for i in chunk], grid)
        stats = DepthStats(torch.tensor(lows, dtype=torch.float64), torch.tensor(highs, dtype=torch.float64), kind,
                           [tuple(m.shape) for m in maps], grids)
        return DepthEncoding(ids=ids[0] if single else ids, stats=stats)

    def _check_ids(self, ids: Any) -> tuple[torch.Tensor, bool]:
        if isinstance(ids, TokenizerOutput):
            ids = ids.ids
        ids = torch.as_tensor(ids)
        n = self.tokens_per_map
        if ids.dtype.is_floating_point or ids.ndim not in (1, 2) or ids.shape[-1] != n:
            raise ValueError(f"expected integer ids of shape ({n},) or (B, {n}), got {ids.dtype} {tuple(ids.shape)}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.config.codebook_size):
            raise ValueError(f"ids must lie in 0..{self.config.codebook_size - 1}")
        return (ids[None] if ids.ndim == 1 else ids).long(), ids.ndim == 1

    @torch.no_grad()
    def decode(
        self, ids: Any, size: tuple[int, int] | None = None, stats: DepthStats | None = None
    ) -> torch.Tensor | list[torch.Tensor]:
        """Ids → maps.

        Without ``stats``: relative inverse depth in [0, 1] (1 = nearest). With ``stats`` (from
        ``encode``): depth in the input's own kind and units. ``size=(H, W)`` sets the output size
        (default: the input's size from ``stats``, else the network's input size). ``(N,)`` ids
        give ``(H, W)``; ``(B, N)`` give ``(B, H, W)``, or a list where sizes differ.
        """
        batch, single = self._check_ids(ids)
        cfg = self.config
        if stats is not None and len(stats.sizes) != len(batch):
            raise ValueError(f"stats describe {len(stats.sizes)} maps but ids hold {len(batch)}")
        grids = stats.grids if stats is not None else [cfg.choose_grid(*size) if size else cfg.grids[0]] * len(batch)
        outs: list[torch.Tensor] = [torch.empty(0)] * len(batch)
        for grid in set(grids):
            index = [i for i, g in enumerate(grids) if g == grid]
            for start in range(0, len(index), CHUNK):
                chunk = index[start : start + CHUNK]
                rel = self._decode_grid(batch[chunk], grid)  # (b, 1, H', W')
                for j, i in enumerate(chunk):
                    target = size or (stats.sizes[i] if stats is not None else self.default_size(grid))
                    out = resize(rel[j : j + 1], tuple(target))[0, 0]
                    if stats is not None:
                        inv = out.double() * (stats.high[i] - stats.low[i]) + stats.low[i]
                        out = from_inverse(inv, stats.kind).float()
                    outs[i] = out
        if single:
            return outs[0]
        return torch.stack(outs) if len({o.shape for o in outs}) == 1 else outs

    # --- text -------------------------------------------------------------------------------

    def to_text(self, ids: Any, **kwargs: Any) -> str | list[str]:
        batch, single = self._check_ids(ids)
        texts = [self.text.render(row.tolist()) for row in batch]
        return texts[0] if single else texts

    def from_text(self, text: str | Sequence[str], strict: bool = True) -> torch.Tensor:
        """``(N,)`` ids of one span, ``(B, N)`` for a list. Lenient parsing pads a short span by
        repeating its last code and truncates a long one."""
        return self.text.ids_tensor(text if isinstance(text, str) else list(text), strict)



@register_tokenizer("depth_vqvae")
class DepthTokenizer(GridDepthTokenizer):
    """Depth maps ⇄ ``<DEPTH_START>`` + N VQ-VAE codes + ``<DEPTH_END>``."""

    config_class = DepthTokenizerConfig

    def __init__(self, config: DepthTokenizerConfig | None = None):
        super().__init__(config if config is not None else DepthTokenizerConfig())
        self.model = DepthVQVAE(self.config).eval()

    @classmethod
    def from_preset(cls, name: str) -> DepthTokenizer:
        """An untrained tokenizer with a preset's architecture (``perceptok.load("depth")`` gives
        the trained default)."""
        if name not in PRESETS:
            raise ValueError(f"unknown depth preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(PRESETS[name])

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> DepthTokenizer:
        self.model.to(device)
        return self

    def _encode_grid(self, rels, valids, grid):
        x = torch.stack([model_input(r[None, None], v[None, None], self.default_size(grid))[0]
                         for r, v in zip(rels, valids)]).to(self.device)
        return self.model.quantize(self.model.net.encode(x))[1].cpu()

    def _decode_grid(self, ids, grid):
        codes = self.model.codes(ids.to(self.device))
        return self.model.decode_codes(codes, grid).clamp(0, 1).cpu()

    def decode_soft(self, probs: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """Differentiable decoding of code probabilities ``(B, N, K)`` (e.g. an LM's softmax over
        the depth tokens): probability-weighted code vectors through the decoder → relative
        inverse depth ``(B, H', W')`` at the decoder's resolution (AURORA §3.3, reconstruction loss)."""
        k = self.config.codebook_size
        if probs.ndim != 3 or probs.shape[1:] != (self.tokens_per_map, k):
            raise ValueError(f"probs must be (B, {self.tokens_per_map}, {k}), got {tuple(probs.shape)}")
        codes = probs.to(self.device, torch.float32) @ self.model.all_codes()  # (B, N, D)
        return self.model.decode_codes(codes, grid or self.config.grids[0])[:, 0]

    # --- weights ----------------------------------------------------------------------------

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.model.state_dict())

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(tensors, strict=True)
        self.model.eval()



PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained" / "depth"

# The shipped default: trained as its model card (pretrained/depth/README.md) records.
register_preset("depth", lambda: DepthTokenizer.from_pretrained(PRETRAINED))
