"""``perceptok.load``: one call for packaged presets, local folders and Hub repositories."""

from __future__ import annotations

import os
from pathlib import Path

from perceptok import checkpoint
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
    return PerceptionTokenizer.from_pretrained(resolve(name_or_path, revision, cache_dir, token))


def resolve(
    name_or_path: str | os.PathLike,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
) -> Path:
    """The local folder of a saved tokenizer: ``name_or_path`` itself, or a Hub repository
    downloaded to (or, offline, found in) the Hugging Face cache."""
    try:
        return checkpoint.resolve_folder(name_or_path, revision, cache_dir, token)
    except CheckpointError as err:
        if os.path.exists(name_or_path) or "/" in str(name_or_path):
            raise
        raise CheckpointError(f"{err}. Packaged presets: {', '.join(list_presets())}") from err
