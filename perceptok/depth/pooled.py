"""The naive baseline with the depth tokenizer's budget: a grid of mean-pooled relative inverse
depth (valid pixels only), each cell one of ``codebook_size`` levels, decoded by bilinear
interpolation. It is a special case of a VQ-VAE (constant-level codes, an interpolating decoder),
so a trained tokenizer should beat it; ``perceptok eval depth --baseline pooled`` measures both."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from perceptok.config import TokenizerConfig
from perceptok.depth.config import choose_grid
from perceptok.depth.normalize import stats_dtype
from perceptok.depth.tokenizer import GridDepthTokenizer
from perceptok.registry import register_tokenizer


@dataclasses.dataclass(frozen=True)
class PooledDepthConfig(TokenizerConfig):
    # Token grids (rows, cols), chosen per map like DepthTokenizerConfig.grids.
    grids: tuple[tuple[int, int], ...] = ((10, 10),)
    # Pixels per cell of the default output size (grid × cell_size).
    cell_size: int = 32
    # Levels per cell; ids are round(level · (codebook_size − 1)).
    codebook_size: int = 128
    # Tokens are <{prefix}_START>, <{prefix}_k>, <{prefix}_END>.
    token_prefix: str = "DEPTH"

    def __post_init__(self) -> None:
        if not self.grids or len({g[0] * g[1] for g in self.grids}) != 1:
            raise ValueError(f"grids must be non-empty and hold the same number of tokens, got {self.grids!r}")
        if self.codebook_size < 2 or self.cell_size < 1:
            raise ValueError("codebook_size must be ≥ 2 and cell_size ≥ 1")

    @property
    def tokens_per_map(self) -> int:
        return self.grids[0][0] * self.grids[0][1]

    def choose_grid(self, height: int, width: int) -> tuple[int, int]:
        return choose_grid(self.grids, height, width)


@register_tokenizer("depth_pooled")
class PooledDepthTokenizer(GridDepthTokenizer):
    config_class = PooledDepthConfig

    def __init__(self, config: PooledDepthConfig | None = None):
        super().__init__(config if config is not None else PooledDepthConfig())

    def _features(self, rel, valid, grid):
        w = valid[:, None].to(rel.dtype)  # (b, 1, H, W)
        total = F.adaptive_avg_pool2d(rel[:, None] * w, grid)
        count = F.adaptive_avg_pool2d(w, grid)
        mean = (rel[:, None] * w).sum((-2, -1), keepdim=True) / w.sum((-2, -1), keepdim=True).clamp_min(1)
        # cells without measurements take the mean of the map's valid pixels
        return torch.where(count > 0, total / count.clamp_min(1e-12), mean)  # (b, 1, rows, cols)

    def _ids(self, features, grid):
        return torch.round(features.flatten(1) * (self.config.codebook_size - 1)).long()

    def _decode_grid(self, ids, grid):
        levels = ids.to(stats_dtype(ids.device)) / (self.config.codebook_size - 1)
        return levels.view(-1, 1, *grid).float()
