"""The packaged depth presets: ``depth`` (the shipped, trained tokenizer in
``perceptok/pretrained/depth``, its card records how it was trained) and ``depth:pooled`` (the
pooled-grid baseline). Declared without torch, so that listing and describing them is instant; a
factory imports its tokenizer class when it is built."""

from __future__ import annotations

import importlib
from pathlib import Path

from perceptok.depth.config import PooledDepthConfig
from perceptok.describe import describe_folder, describe_saved, saved_config
from perceptok.registry import register_preset

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained" / "depth"


def _pretrained():
    return importlib.import_module("perceptok.depth.tokenizer").DepthTokenizer.from_pretrained(PRETRAINED)


def _pooled():
    return importlib.import_module("perceptok.depth.pooled").PooledDepthTokenizer()


register_preset("depth", _pretrained, lambda: describe_folder(PRETRAINED))
register_preset("depth:pooled", _pooled,
                lambda: describe_saved(saved_config("depth_pooled", PooledDepthConfig()), 0, "depth:pooled"))
