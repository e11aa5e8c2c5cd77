"""Depth perception tokens: a VQ-VAE tokenizer for depth maps."""

from perceptok.depth.config import PRESETS, DepthTokenizerConfig
from perceptok.depth.normalize import DepthStats
from perceptok.depth.pooled import PooledDepthConfig, PooledDepthTokenizer
from perceptok.depth.tokenizer import DepthEncoding, DepthText, DepthTokenizer, GridDepthTokenizer

__all__ = [
    "PRESETS",
    "DepthEncoding",
    "DepthStats",
    "DepthText",
    "DepthTokenizer",
    "DepthTokenizerConfig",
    "GridDepthTokenizer",
    "PooledDepthConfig",
    "PooledDepthTokenizer",
]
