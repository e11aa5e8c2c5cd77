"""perceptok: perception tokens for multimodal language models.

Depth maps, boxes and points become short sequences of discrete tokens that a language model
reads and writes (AURORA, arXiv 2412.03548).

The names below are imported on first use (``perceptok.BoxTokenizer`` loads torch then), so
``perceptok --help`` and other light commands start without loading torch.
"""

from __future__ import annotations

from perceptok._lazy import lazy_names
from perceptok._version import __version__
from perceptok.errors import CheckpointError, PerceptokError, TokenParseError

_LAZY = {
    "AutoPerceptionTokenizer": "perceptok.base",
    "PerceptionTokenizer": "perceptok.base",
    "TokenizerOutput": "perceptok.base",
    "BoxTokenizer": "perceptok.boxes",
    "BoxTokenizerConfig": "perceptok.boxes",
    "PAD_ID": "perceptok.coordinates",
    "CoordinateConfig": "perceptok.coordinates",
    "CoordinateEncoding": "perceptok.coordinates",
    "DepthEncoding": "perceptok.depth",
    "DepthTokenizer": "perceptok.depth",
    "DepthTokenizerConfig": "perceptok.depth",
    "PooledDepthTokenizer": "perceptok.depth",
    "load": "perceptok.loading",
    "PointTokenizer": "perceptok.points",
    "PointTokenizerConfig": "perceptok.points",
    "list_presets": "perceptok.registry",
    "list_tokenizers": "perceptok.registry",
    "register_preset": "perceptok.registry",
    "register_tokenizer": "perceptok.registry",
}

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())


__all__ = sorted(["CheckpointError", "PerceptokError", "TokenParseError", "__version__", *_LAZY])
