"""What the box and point tokenizers share: config and presets, quantisation, text grammar."""

from perceptok.coordinates.config import PRESETS, CoordinateConfig, presets_for
from perceptok.coordinates.tokenizer import PAD_ID, CoordinateEncoding, CoordinateTokenizer

__all__ = ["PAD_ID", "PRESETS", "CoordinateConfig", "CoordinateEncoding", "CoordinateTokenizer", "presets_for"]
