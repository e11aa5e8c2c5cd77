"""The generated model card (``README.md``) that ships with every saved tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from perceptok._version import __version__
from perceptok.checkpoint import CARD_NAME, write_text

if TYPE_CHECKING:
    from perceptok.base import PerceptionTokenizer


def render_model_card(tokenizer: PerceptionTokenizer) -> str:
    vocab = tokenizer.vocab
    preview = ", ".join(f"`{t}`" for t in vocab[:3])
    if len(vocab) > 3:
        preview += f", …, `{vocab[-1]}`"
    delimiters = [t for t in (tokenizer.start_token, tokenizer.end_token) if t]
    extra = [t for t in tokenizer.special_tokens if t not in set(vocab) | set(delimiters)]  # grid markers, tags
    config = json.dumps(tokenizer.config.to_dict(), indent=2, sort_keys=True)
    lines = [
        "---",
        "library_name: perceptok",
        "tags:",
        "- perceptok",
        "- perception-tokens",
        f"- {tokenizer.tokenizer_type}",
        "---",
        "",
        f"# perceptok `{tokenizer.tokenizer_type}` tokenizer",
        "",
        f"A perception tokenizer ({type(tokenizer).__name__}) saved by perceptok {__version__}. "
        "Perception tokens (AURORA, arXiv 2412.03548) let a multimodal language model write an "
        "intermediate representation such as a depth map or boxes before it answers.",
        "",
        f"- Vocabulary: {tokenizer.vocab_size} tokens ({preview})",
        f"- Span delimiters: {', '.join(f'`{t}`' for t in delimiters) if delimiters else 'none'}",
        *([f"- Other special tokens: {', '.join(f'`{t}`' for t in extra)}"] if extra else []),
        f"- Weights: {'model.safetensors' if tokenizer.state_tensors() else 'none (rule-based)'}",
        "",
        "## Usage",
        "",
        "```python",
        "from perceptok import AutoPerceptionTokenizer",
        "",
        'tokenizer = AutoPerceptionTokenizer.from_pretrained("THIS_REPO_OR_FOLDER")',
        "```",
        "",
        "## Config",
        "",
        "```json",
        config,
        "```",
        "",
    ]
    for title, body in tokenizer.card_sections:
        lines += [f"## {title}", "", body.strip(), ""]
    return "\n".join(lines)


def append_card_section(folder: Path, title: str, body: str) -> None:
    """Add a section to the model card of a saved tokenizer (atomically)."""
    card = folder / CARD_NAME
    if not card.is_file():
        raise FileNotFoundError(f"{card} does not exist; save the tokenizer first")
    write_text(card, card.read_text(encoding="utf-8").rstrip() + f"\n\n## {title}\n\n{body.strip()}\n")
