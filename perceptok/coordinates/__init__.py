"""What the box and point tokenizers share: the conventions' layouts and presets, quantisation,
text grammar, batch text, conversion. Names are imported on first use."""

from perceptok._lazy import lazy_names

_LAZY = {
    "PAD_ID": "perceptok.coordinates.outputs",
    "PRESETS": "perceptok.coordinates.config",
    "CoordinateConfig": "perceptok.coordinates.config",
    "CoordinateEncoding": "perceptok.coordinates.outputs",
    "CoordinateTokenizer": "perceptok.coordinates.tokenizer",
    "presets_for": "perceptok.coordinates.config",
}
__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
__all__ = sorted(_LAZY)
