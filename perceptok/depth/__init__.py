"""Depth perception tokens: a VQ-VAE tokenizer for depth maps. Names are imported on first use."""

from perceptok._lazy import lazy_names

_LAZY = {
    "PRESETS": "perceptok.depth.config",
    "DepthEncoding": "perceptok.depth.outputs",
    "DepthStats": "perceptok.depth.normalize",
    "DepthText": "perceptok.depth.outputs",
    "DepthTokenizer": "perceptok.depth.tokenizer",
    "DepthTokenizerConfig": "perceptok.depth.config",
    "GridDepthTokenizer": "perceptok.depth.grid",
    "PooledDepthConfig": "perceptok.depth.config",
    "PooledDepthTokenizer": "perceptok.depth.pooled",
    "PreparedDepth": "perceptok.depth.outputs",
}
__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
__all__ = sorted(_LAZY)
