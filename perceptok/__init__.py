"""perceptok: perception tokens for multimodal language models.

Depth maps, boxes and points become short sequences of discrete tokens that a language model
reads and writes (AURORA, arXiv 2412.03548).
"""

from perceptok._version import __version__
from perceptok.base import AutoPerceptionTokenizer, PerceptionTokenizer, TokenizerOutput
from perceptok.boxes import BoxTokenizer, BoxTokenizerConfig
from perceptok.coordinates import PAD_ID, CoordinateConfig, CoordinateEncoding
from perceptok.depth import DepthEncoding, DepthTokenizer, DepthTokenizerConfig, PooledDepthTokenizer
from perceptok.errors import CheckpointError, PerceptokError, TokenParseError
from perceptok.loading import load
from perceptok.points import PointTokenizer, PointTokenizerConfig
from perceptok.registry import list_presets, list_tokenizers, register_preset, register_tokenizer

__all__ = [
    "PAD_ID",
    "AutoPerceptionTokenizer",
    "BoxTokenizer",
    "BoxTokenizerConfig",
    "CheckpointError",
    "CoordinateConfig",
    "CoordinateEncoding",
    "DepthEncoding",
    "DepthTokenizer",
    "DepthTokenizerConfig",
    "PerceptionTokenizer",
    "PerceptokError",
    "PointTokenizer",
    "PointTokenizerConfig",
    "PooledDepthTokenizer",
    "TokenParseError",
    "TokenizerOutput",
    "__version__",
    "list_presets",
    "list_tokenizers",
    "load",
    "register_preset",
    "register_tokenizer",
]
