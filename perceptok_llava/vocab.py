"""Perception vocabularies in a Hugging Face language model.

``add_perception_tokens`` adds one or several perceptok tokenizers' tokens (depth codes and
delimiters, box and point coordinates) to any HF model with input and output embeddings and to
its tokenizer, and returns a ``PerceptionVocab`` that maps each tokenizer's local ids to LM ids
and back.

New rows are initialised from what the token means, not at random (the original's choice): a
token's embedding (input and output) starts as the mean of the LM's own embeddings of its
description — ``<PIXEL_120>`` as "PIXEL 120", ``<DEPTH_START>`` as "DEPTH START" — so
coordinate tokens start near the numbers they stand for and training begins from a model
that already roughly "reads" them. Where a description yields nothing, the mean of all trained
rows is used (mean-resizing).

llava-hf checkpoints pad their embedding matrices (32064 rows for 32002 tokens): new tokens land
on those untrained padding rows first, which are then initialised like resized ones, and the
matrices are resized only when the padding runs out.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import torch

from perceptok import PerceptionTokenizer, load
from perceptok.checkpoint import write_text
from perceptok.depth.batching import as_tensor

VOCAB_FILE = "perception_vocab.json"


@dataclasses.dataclass
class PerceptionVocab:
    """Local ids of each perception tokenizer ⇄ LM token ids.

    Attributes:
        tokenizers: name → perceptok tokenizer (e.g. "depth", "boxes").
        lm_ids: name → LM id of each local id (``vocab[i]`` is LM id ``lm_ids[name][i]``).
        delimiters: name → {"start": id, "end": id} where the tokenizer has them.
        markers: name → LM ids of the tokens that may follow its start token to name a grid
            (depth maps on a grid other than the first).
    """

    tokenizers: dict[str, PerceptionTokenizer]
    lm_ids: dict[str, list[int]]
    delimiters: dict[str, dict[str, int]]
    markers: dict[str, list[int]] = dataclasses.field(default_factory=dict)

    def to_lm(self, name: str, local_ids: torch.Tensor) -> torch.Tensor:
        """Local ids (any shape) → LM ids, on the ids' device."""
        ids = as_tensor(local_ids)
        return torch.tensor(self.lm_ids[name], dtype=torch.long, device=ids.device)[ids.long()]

    def from_lm(self, name: str, lm_ids: torch.Tensor) -> torch.Tensor:
        """LM ids (any shape) → local ids, -1 where an id is not one of this tokenizer's; on the
        ids' device."""
        ids = as_tensor(lm_ids).long()
        table = torch.full((max(self.lm_ids[name]) + 1,), -1, dtype=torch.long, device=ids.device)
        table[torch.tensor(self.lm_ids[name], device=ids.device)] = torch.arange(len(self.lm_ids[name]), device=ids.device)
        inside = (ids >= 0) & (ids < len(table))
        return torch.where(inside, table[ids.clamp(0, len(table) - 1)], torch.full_like(ids, -1))

    @property
    def new_token_ids(self) -> list[int]:
        """Every LM id this vocabulary uses (the rows LoRA's trainable_token_indices should train)."""
        ids = {i for v in self.lm_ids.values() for i in v}
        ids |= {i for d in self.delimiters.values() for i in d.values()}
        ids |= {i for m in self.markers.values() for i in m}
        return sorted(ids)

    def validate(self, lm_tokenizer: Any, model: torch.nn.Module) -> None:
        """Check that the LM tokenizer, the embedding rows and this map agree (a wrong id fails
        silently otherwise)."""
        rows = model.get_input_embeddings().weight.shape[0]
        lm_tok = getattr(lm_tokenizer, "tokenizer", lm_tokenizer)
        if len(lm_tok) > rows:
            raise ValueError(f"the LM tokenizer has {len(lm_tok)} tokens but the model {rows} embedding rows; "
                             "resize the embeddings (model.resize_token_embeddings(len(tokenizer)))")
        lm_tokenizer = lm_tok
        for name, tok in self.tokenizers.items():
            pairs = list(zip(tok.vocab, self.lm_ids[name]))
            pairs += [(getattr(tok, f"{k}_token"), i) for k, i in self.delimiters.get(name, {}).items()]
            pairs += list(zip(getattr(tok, "grid_markers", []), self.markers.get(name, [])))
            for token, expected in pairs:
                actual = lm_tokenizer.convert_tokens_to_ids(token)
                if actual != expected:
                    raise ValueError(f"{name}: the LM tokenizer maps {token!r} to {actual}, the vocabulary to {expected}; "
                                     "load the tokenizer saved with this vocabulary")
                if expected >= rows:
                    raise ValueError(f"{name}: {token!r} has id {expected} but the model has {rows} embedding rows")

    def save(self, folder: str | Path) -> None:
        """Write ``perception_vocab.json`` and each tokenizer's ``save_pretrained`` folder."""
        folder = Path(folder)
        for name, tok in self.tokenizers.items():
            tok.save_pretrained(folder / "perception_tokenizers" / name)
        write_text(folder / VOCAB_FILE, json.dumps({"lm_ids": self.lm_ids, "delimiters": self.delimiters,
                                                    "markers": self.markers}) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> PerceptionVocab:
        folder = Path(folder)
        path = folder / VOCAB_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: save the vocabulary with PerceptionVocab.save")
        data = json.loads(path.read_text(encoding="utf-8"))
        tokenizers = {name: load(folder / "perception_tokenizers" / name) for name in data["lm_ids"]}
        return cls(tokenizers, data["lm_ids"], data["delimiters"], data.get("markers", {}))


def describe(token: str) -> str:
    """Plain words for a token: ``<PIXEL_120>`` → "PIXEL 120", ``<loc0256>`` → "loc 0256"."""
    words = re.sub(r"[<>|_]+", " ", token)
    return re.sub(r"([A-Za-z])(\d)", r"\1 \2", words).strip()


def add_perception_tokens(model: Any, lm_tokenizer: Any, tokenizers: dict[str, PerceptionTokenizer]) -> PerceptionVocab:
    """Add the tokenizers' tokens to ``lm_tokenizer`` (a tokenizer or a processor holding one) and
    ``model``; returns the id map. Tokens the LM already has as single tokens are reused."""
    from transformers import AddedToken

    lm_tok = getattr(lm_tokenizer, "tokenizer", lm_tokenizer)
    known = lm_tok.get_vocab()
    trained_rows = len(lm_tok)  # rows beyond this are padding or new: never trained
    wanted: list[str] = []
    for name, tok in tokenizers.items():
        if getattr(tok, "textual", False) or not all(t.startswith("<") and t.endswith(">") for t in tok.special_tokens):
            raise ValueError(f"{name}: the {getattr(tok.config, 'preset', type(tok).__name__)} convention writes "
                             f"coordinates as plain text ({tok.vocab[1]!r}…), so there are no tokens to add: train on "
                             "tok.to_text(...) as ordinary text and read answers with tok.parse(text, strict=False)")
        wanted += [t for t in tok.special_tokens if t not in known and t not in wanted]
    descriptions = {t: lm_tok(describe(t), add_special_tokens=False)["input_ids"] for t in wanted}
    lm_tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in wanted], special_tokens=True)
    needed = len(lm_tok)
    embeddings = model.get_input_embeddings()
    if needed > embeddings.weight.shape[0]:
        model.resize_token_embeddings(needed, mean_resizing=True)
    _initialise(model, lm_tok, descriptions, trained_rows)
    lm_ids = {name: lm_tok.convert_tokens_to_ids(tok.vocab) for name, tok in tokenizers.items()}
    delimiters = {name: {k: lm_tok.convert_tokens_to_ids(getattr(tok, f"{k}_token"))
                         for k in ("start", "end") if getattr(tok, f"{k}_token")} for name, tok in tokenizers.items()}
    markers = {name: lm_tok.convert_tokens_to_ids(tok.grid_markers) for name, tok in tokenizers.items()
               if getattr(tok, "grid_markers", None)}
    vocab = PerceptionVocab(dict(tokenizers), lm_ids, delimiters, markers)
    vocab.validate(lm_tok, model)
    return vocab


@torch.no_grad()
def _initialise(model: Any, lm_tok: Any, descriptions: dict[str, list[int]], trained_rows: int) -> None:
    matrices = [model.get_input_embeddings().weight]
    out = model.get_output_embeddings()
    if out is not None and out.weight.data_ptr() != matrices[0].data_ptr():
        matrices.append(out.weight)
    for weight in matrices:
        mean = weight[:trained_rows].float().mean(0)
        for token, pieces in descriptions.items():
            row = lm_tok.convert_tokens_to_ids(token)
            pieces = [p for p in pieces if p < trained_rows]
            weight[row] = (weight[pieces].float().mean(0) if pieces else mean).to(weight.dtype)
