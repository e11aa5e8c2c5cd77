"""Box perception tokens: ``BoxTokenizer`` and conversion between conventions."""

from perceptok.boxes.convert import convert
from perceptok.boxes.tokenizer import BOX_FORMATS, BoxTokenizer, BoxTokenizerConfig

__all__ = ["BOX_FORMATS", "BoxTokenizer", "BoxTokenizerConfig", "convert"]
