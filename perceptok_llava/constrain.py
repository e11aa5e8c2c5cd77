"""Constrained decoding that keeps perception spans well formed, as a ``LogitsProcessor``
(no edits to transformers' files, unlike the original).

Rules, applied to each whole sequence, prompt included, so a prompt that ends in
``<DEPTH_START>`` makes the model write a depth map (batched; greedy, sampling and beam search):

- a delimited span (depth): after ``<DEPTH_START>`` optionally one grid marker
  (``<DEPTH_GRID_5x20>``) as the first token, then exactly the tokenizer's number of codes, then
  ``<DEPTH_END>``; codes, markers and ``<DEPTH_END>`` are forbidden outside a span;
- coordinate boxes and points: once a coordinate token starts an item, the item's remaining
  coordinate tokens follow, with the layout's single-token punctuation (``,`` and ``)``) between
  them where the LM has those as tokens;
- free text elsewhere.
"""

from __future__ import annotations

import dataclasses

import torch

from perceptok.coordinates import CoordinateTokenizer
from perceptok_llava.vocab import PerceptionVocab


@dataclasses.dataclass
class _Span:
    start: int
    end: int
    codes: torch.Tensor  # LM ids allowed inside
    length: int
    markers: torch.Tensor  # LM ids of grid markers, allowed as the first token only

    def allowed(self, after: list[int]) -> torch.Tensor:
        """LM ids allowed next, ``after`` being the tokens since the start token (no end yet)."""
        marked = bool(after) and after[0] in set(self.markers.tolist())
        count = len(after) - marked
        if not after:
            return torch.cat([self.codes, self.markers])
        return self.codes if count < self.length else torch.tensor([self.end])


@dataclasses.dataclass
class _Items:
    coords: torch.Tensor  # LM ids of coordinate tokens
    lengths: set[int]  # coordinate tokens an item may have (4 for boxes, 2 for points sharing them)
    between: int | None  # LM id of the punctuation between coordinates (None: adjacent)
    close: int | None  # LM id of the punctuation closing an item

    def __post_init__(self) -> None:
        self.coord_set = set(self.coords.tolist())

    def allowed(self, generated: list[int]) -> torch.Tensor | None:
        """Run the item grammar over ``generated``; the ids allowed next, or None when free."""
        coords = self.coord_set
        longest = max(self.lengths)
        count, need_sep = 0, False  # coordinates in the open item; whether punctuation is due
        for token in generated:
            if need_sep and token == self.between:
                need_sep = False
            elif token in coords and not need_sep and count < longest:
                count, need_sep = count + 1, self.between is not None
                if count == longest and self.close is None:
                    count, need_sep = 0, False
            elif count and token == self.close and count in self.lengths:
                count, need_sep = 0, False
            else:  # anything else ends the item (only possible in unconstrained text)
                count, need_sep = (1, self.between is not None) if token in coords else (0, False)
        if count == 0:
            return None
        options: list[int] = []
        if count < longest:
            options += [self.between] if need_sep else self.coords.tolist()
        if count in self.lengths:
            if self.close is None:
                return None  # the item may end here
            options.append(self.close)
        return torch.tensor(options)


def _single_token(lm_tok, text: str) -> int | None:
    ids = lm_tok(text, add_special_tokens=False)["input_ids"]
    return ids[0] if len(ids) == 1 else None


class PerceptionLogitsProcessor:
    """``LogitsProcessor`` for ``model.generate(logits_processor=[...])``."""

    def __init__(self, vocab: PerceptionVocab, lm_tokenizer):
        lm_tok = getattr(lm_tokenizer, "tokenizer", lm_tokenizer)
        self.spans: list[_Span] = []
        self.items: list[_Items] = []
        by_coords: dict[tuple[int, ...], _Items] = {}
        for name, tok in vocab.tokenizers.items():
            ids = torch.tensor(vocab.lm_ids[name])
            if name in vocab.delimiters and len(vocab.delimiters[name]) == 2:
                d = vocab.delimiters[name]
                markers = torch.tensor(vocab.markers.get(name, []), dtype=torch.long)
                self.spans.append(_Span(d["start"], d["end"], ids, getattr(tok, "tokens_per_map"), markers))
            elif isinstance(tok, CoordinateTokenizer):
                key = tuple(vocab.lm_ids[name])
                if key in by_coords:
                    by_coords[key].lengths.add(tok.tokens_per_item)
                    continue
                layout = tok.grammar.layout
                between = layout.coord_sep or layout.point_sep
                by_coords[key] = _Items(ids, {tok.tokens_per_item},
                                        _single_token(lm_tok, between) if between else None,
                                        _single_token(lm_tok, layout.item_close) if layout.item_close else None)
        self.items = list(by_coords.values())
        outside = [t for span in self.spans for t in (span.codes, span.markers, torch.tensor([span.end]))]
        self.outside = torch.cat(outside) if outside else torch.zeros(0, dtype=torch.long)

    def _allowed(self, generated: list[int]) -> torch.Tensor | None:
        """LM ids allowed next, or None for free text."""
        for span in self.spans:
            if span.start in generated:
                last = len(generated) - 1 - generated[::-1].index(span.start)
                after = generated[last + 1 :]
                if span.end not in after:
                    return span.allowed(after)
        for items in self.items:
            allowed = items.allowed(generated)
            if allowed is not None:
                return allowed
        return None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        masked = scores.clone()
        outside = self.outside.to(scores.device)
        for row in range(input_ids.shape[0]):
            allowed = self._allowed(input_ids[row].tolist())
            if allowed is None:
                masked[row, outside] = float("-inf")
            else:
                keep = torch.full_like(masked[row], float("-inf"))
                keep[allowed.to(scores.device)] = 0
                masked[row] = masked[row] + keep
        return masked

