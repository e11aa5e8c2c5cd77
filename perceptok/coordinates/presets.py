"""The packaged box and point presets: ``boxes`` and ``points`` (AURORA's convention), and
``boxes:NAME`` / ``points:NAME`` for every convention of ``config.PRESETS`` whose layout writes
that kind. Declared without torch, so that listing them is instant; a preset's factory imports
its tokenizer class when it is built."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from perceptok.coordinates.config import PRESETS, CoordinateConfig, presets_for
from perceptok.describe import description
from perceptok.registry import register_preset

KINDS = {"box": ("boxes", "perceptok.boxes.tokenizer", "BoxTokenizer"),
         "point": ("points", "perceptok.points.tokenizer", "PointTokenizer")}


def _factory(module: str, cls: str, preset: str) -> Callable[[], Any]:
    return lambda: getattr(importlib.import_module(module), cls).from_preset(preset)


def _describer(plural: str, cls: str, preset: str) -> Callable[[], dict[str, Any]]:
    """What ``describe`` says of the built preset, from its config (the box and point configs
    have ``CoordinateConfig``'s fields; coordinate tokenizers have no delimiters or weights)."""
    def describe() -> dict[str, Any]:
        config = CoordinateConfig(preset=preset, **PRESETS[preset])
        return description(plural, config, cls, config.vocab())

    return describe


for _kind, (_plural, _module, _cls) in KINDS.items():
    for _name, _preset in [(_plural, "aurora")] + [(f"{_plural}:{p}", p) for p in presets_for(_kind)]:
        register_preset(_name, _factory(_module, _cls, _preset), _describer(_plural, _cls, _preset))
