"""What ``perceptok info`` says about a tokenizer: from the tokenizer, or, for the types whose
tokenizers import torch (depth), from config.json and the weights file's header alone, so that
``info`` answers in a fraction of a second."""

from __future__ import annotations

import importlib
import os
from typing import Any

from perceptok._version import __version__
from perceptok.config import TokenizerConfig
from perceptok.errors import CheckpointError


def saved_config(tokenizer_type: str, config: TokenizerConfig) -> dict[str, Any]:
    """What ``config.json`` holds: the type, the library version and the config fields (saving
    adds ``weights_sha256`` where there are weights)."""
    return {"tokenizer_type": tokenizer_type, "perceptok_version": __version__, **config.to_dict()}


def split_saved(values: dict[str, Any], source: str) -> tuple[str, dict[str, Any], str | None]:
    """config.json's values → the tokenizer type, the config fields and the recorded weights hash."""
    fields = dict(values)
    saved_type = fields.pop("tokenizer_type", None)
    fields.pop("perceptok_version", None)
    weights_hash = fields.pop("weights_sha256", None)
    if not isinstance(saved_type, str):
        raise CheckpointError(f"{source} lacks a 'tokenizer_type' string; it was not written by perceptok")
    return saved_type, fields, weights_hash


def description(tokenizer_type: str, config: TokenizerConfig, class_name: str, vocab: list[str],
                start_token: str | None = None, end_token: str | None = None, weights: int = 0) -> dict[str, Any]:
    """The saved config, the class, the vocabulary's size and first tokens, the span delimiters
    and the number of weights."""
    return {**saved_config(tokenizer_type, config), "class": class_name, "vocab_size": len(vocab),
            "first_tokens": vocab[:3], "start_token": start_token, "end_token": end_token, "weights": weights}


def describe_saved(values: dict[str, Any], weights: int, source: str) -> dict[str, Any] | None:
    """``describe`` of the tokenizer that config.json ``values`` and ``weights`` numbers make,
    without building it, for the types of ``registry.CONFIG_CLASSES``; None for other types."""
    from perceptok.registry import CONFIG_CLASSES

    saved_type, fields, _ = split_saved(values, source)
    if saved_type not in CONFIG_CLASSES:
        return None
    class_name, module, config_class = CONFIG_CLASSES[saved_type]
    config = getattr(importlib.import_module(module), config_class).from_dict(fields, source=source)
    return description(saved_type, config, class_name, config.vocab(), config.start_token, config.end_token, weights)


def describe_folder(folder: os.PathLike) -> dict[str, Any] | None:
    """``describe_saved`` of a folder written by ``save_pretrained``."""
    from pathlib import Path

    from perceptok import checkpoint

    folder = Path(folder)
    return describe_saved(checkpoint.read_config(folder), checkpoint.weights_numel(folder),
                          str(folder / checkpoint.CONFIG_NAME))


def describe_name(name: str, revision: str | None = None) -> dict[str, Any]:
    """What ``perceptok info NAME`` prints for a preset, a saved folder or a Hub id: from the
    config where the preset or the saved type allows (no torch), else from the loaded tokenizer
    (box and point tokenizers load without torch too)."""
    from perceptok.loading import load, resolve
    from perceptok.registry import describe_preset, list_presets

    info = describe_preset(name)
    if info is None and name not in list_presets():
        info = describe_folder(resolve(name, revision=revision))
    return info if info is not None else describe(load(name, revision=revision))


def describe(tok: Any) -> dict[str, Any]:
    """``description`` of a built tokenizer."""
    return description(tok.tokenizer_type, tok.config, type(tok).__name__, tok.vocab, tok.start_token, tok.end_token,
                       sum(t.numel() for t in tok.state_tensors().values()))
