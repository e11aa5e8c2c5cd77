"""The naive baseline with the depth tokenizer's budget: a grid of mean-pooled relative inverse
depth (valid pixels only), each cell one of ``codebook_size`` levels, decoded by bilinear
interpolation. It is a special case of a VQ-VAE (constant-level codes, an interpolating decoder),
so a trained tokenizer should beat it; ``perceptok eval depth --baseline pooled`` measures both."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from perceptok.depth.config import PooledDepthConfig
from perceptok.depth.masks import weights
from perceptok.depth.normalize import stats_dtype
from perceptok.depth.grid import GridDepthTokenizer
from perceptok.registry import register_tokenizer


@register_tokenizer("depth_pooled")
class PooledDepthTokenizer(GridDepthTokenizer):
    config_class = PooledDepthConfig

    def __init__(self, config: PooledDepthConfig | None = None):
        super().__init__(config if config is not None else PooledDepthConfig())

    def _features(self, norm, grid):
        rel = norm.rel
        w = weights(norm.valid[:, None], rel.dtype)  # (b, 1, H, W)
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
