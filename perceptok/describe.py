"""What ``perceptok info`` says about a tokenizer: from the tokenizer, or, for presets that
declare how, from their config alone (no torch, no weights)."""

from __future__ import annotations

from typing import Any

from perceptok._version import __version__
from perceptok.config import TokenizerConfig


def saved_config(tokenizer_type: str, config: TokenizerConfig) -> dict[str, Any]:
    """What ``config.json`` holds: the type, the library version and the config fields."""
    return {"tokenizer_type": tokenizer_type, "perceptok_version": __version__, **config.to_dict()}


def description(tokenizer_type: str, config: TokenizerConfig, class_name: str, vocab: list[str],
                start_token: str | None = None, end_token: str | None = None, weights: int = 0) -> dict[str, Any]:
    """The saved config, the class, the vocabulary's size and first tokens, the span delimiters
    and the number of weights."""
    return {**saved_config(tokenizer_type, config), "class": class_name, "vocab_size": len(vocab),
            "first_tokens": vocab[:3], "start_token": start_token, "end_token": end_token, "weights": weights}


def describe(tok: Any) -> dict[str, Any]:
    """``description`` of a built tokenizer."""
    return description(tok.tokenizer_type, tok.config, type(tok).__name__, tok.vocab, tok.start_token, tok.end_token,
                       sum(t.numel() for t in tok.state_tensors().values()))
