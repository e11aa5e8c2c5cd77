"""The packaged box and point presets: ``boxes`` and ``points`` (AURORA's convention), and
``boxes:NAME`` / ``points:NAME`` for every convention of ``config.PRESETS`` whose layout writes
that kind. A preset's factory imports its tokenizer class when it is built (without torch: the
coordinate tokenizers compute in numpy)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from perceptok.coordinates.config import presets_for
from perceptok.registry import register_preset

KINDS = {"box": ("boxes", "perceptok.boxes.tokenizer", "BoxTokenizer"),
         "point": ("points", "perceptok.points.tokenizer", "PointTokenizer")}


def _factory(module: str, cls: str, preset: str) -> Callable[[], Any]:
    return lambda: getattr(importlib.import_module(module), cls).from_preset(preset)


for _kind, (_plural, _module, _cls) in KINDS.items():
    for _name, _preset in [(_plural, "aurora")] + [(f"{_plural}:{p}", p) for p in presets_for(_kind)]:
        register_preset(_name, _factory(_module, _cls, _preset))
