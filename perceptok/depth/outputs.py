"""What depth tokenizers return: ``DepthEncoding`` (ids and the normalisation that restores units),
``DepthText`` (ids and grids read from text) and ``PreparedDepth`` (maps after the pixel work,
before the codebook step)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from perceptok.base import TokenizerOutput
from perceptok.depth.batching import groups
from perceptok.depth.normalize import DepthStats


@dataclasses.dataclass
class DepthEncoding(TokenizerOutput):
    """Encoded depth maps.

    Attributes:
        ids: ``(N,)`` for one map, ``(B, N)`` for a batch; long.
        stats: the per-map normalisation; pass it to ``decode`` to get depth in the input's units.
    """

    stats: DepthStats


@dataclasses.dataclass
class DepthText(TokenizerOutput):
    """Depth spans read from text.

    Attributes:
        ids: ``(N,)`` for one span, ``(B, N)`` for a list; long.
        grids: the token grid of each span (from its grid marker; the first grid without one).
    """

    grids: list[tuple[int, int]]


@dataclasses.dataclass
class PreparedDepth:
    """Maps after ``prepare`` (the pixel work of ``encode``), before the codebook step.

    Attributes:
        features: one ``(C, h, w)`` tensor per map (the network's input, or pooled cells).
        stats: the per-map normalisation, as ``encode`` returns it.
        single: whether the input was one map (``encode_prepared`` then gives ``(N,)`` ids).
    """

    features: list[torch.Tensor]
    stats: DepthStats
    single: bool = False

    @classmethod
    def cat(cls, parts: Sequence[PreparedDepth]) -> PreparedDepth:
        """Join prepared batches (of one kind, on one device) into one. Features of one shape
        become views of one tensor, so the batch crosses between processes as a few tensors."""
        kinds = {p.stats.kind for p in parts}
        if len(kinds) != 1:
            raise ValueError(f"prepared maps must share one depth kind to be joined, got {sorted(kinds)}")
        stats = DepthStats(torch.cat([p.stats.low for p in parts]), torch.cat([p.stats.high for p in parts]), kinds.pop(),
                           [s for p in parts for s in p.stats.sizes], [g for p in parts for g in p.stats.grids])
        features = [f for p in parts for f in p.features]
        for _, chunk in groups([tuple(f.shape) for f in features], len(features)):
            for i, f in zip(chunk, torch.stack([features[i] for i in chunk])):
                features[i] = f
        return cls(features, stats)
