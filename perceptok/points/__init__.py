"""Point and keypoint perception tokens."""

from perceptok.points.convert import convert
from perceptok.points.tokenizer import PointTokenizer, PointTokenizerConfig

__all__ = ["PointTokenizer", "PointTokenizerConfig", "convert"]
