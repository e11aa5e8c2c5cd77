"""``perceptok.load``: one call for packaged presets, local folders and Hub repositories."""

from __future__ import annotations

import os

from perceptok.base import PerceptionTokenizer
from perceptok.errors import CheckpointError
from perceptok.registry import build_preset, list_presets


def load(
    name_or_path: str | os.PathLike,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
) -> PerceptionTokenizer:
    """A ready tokenizer from a packaged preset name (``perceptok list`` shows them), a folder
    written by ``save_pretrained``, or a Hub repository id (``owner/name``)."""
    preset = build_preset(str(name_or_path))
    if preset is not None:
        return preset
    try:
        return PerceptionTokenizer.from_pretrained(name_or_path, revision=revision, cache_dir=cache_dir, token=token)
    except CheckpointError as err:
        if os.path.exists(name_or_path) or "/" in str(name_or_path):
            raise
        raise CheckpointError(f"{err}. Packaged presets: {', '.join(list_presets())}") from err
