"""A small third-party modality with learned weights, as an outside package would write one.

``ScalarCodebookTokenizer`` quantises 1-D signals ``(L,)`` in [0, 1] to the nearest of ``K``
codebook values (a ``(K,)`` tensor saved to ``model.safetensors``). Tests register it through
the ``perceptok.tokenizers`` entry-point group and run the conformance suite on it, which
covers the strict loading of weights.
"""

from __future__ import annotations

import dataclasses
import re

import torch

from perceptok import PerceptionTokenizer, TokenizerOutput, TokenParseError
from perceptok.config import TokenizerConfig


@dataclasses.dataclass(frozen=True)
class ScalarCodebookConfig(TokenizerConfig):
    # Number of codebook values.
    codebook_size: int = 8

    def __post_init__(self) -> None:
        if self.codebook_size < 2:
            raise ValueError(f"codebook_size must be ≥ 2, got {self.codebook_size}")


class ScalarCodebookTokenizer(PerceptionTokenizer):
    config_class = ScalarCodebookConfig

    def __init__(self, config: ScalarCodebookConfig | None = None):
        super().__init__(config or ScalarCodebookConfig())
        k = self.config.codebook_size
        self.codebook = torch.linspace(0, 1, k) ** 2  # (K,)

    @property
    def vocab(self) -> list[str]:
        return [f"<S_{i}>" for i in range(self.config.codebook_size)]

    @property
    def start_token(self) -> str:
        return "<SIG>"

    @property
    def end_token(self) -> str:
        return "</SIG>"

    def encode(self, x, **kwargs) -> TokenizerOutput:
        x = torch.as_tensor(x, dtype=torch.float32)
        if isinstance(x, torch.Tensor) and x.ndim not in (1, 2):
            raise ValueError(f"expected (L,) or (B, L) signals, got {tuple(x.shape)}")
        return TokenizerOutput(ids=(x[..., None] - self.codebook).abs().argmin(-1))

    def decode(self, ids, **kwargs) -> torch.Tensor:
        return self.codebook[torch.as_tensor(ids)]

    def to_text(self, ids, **kwargs):
        ids = ids.ids if isinstance(ids, TokenizerOutput) else torch.as_tensor(ids)
        if ids.ndim == 2:
            return [self.to_text(row) for row in ids]
        return self.start_token + "".join(self.vocab[i] for i in ids.tolist()) + self.end_token

    def from_text(self, text, strict: bool = True) -> torch.Tensor:
        if not isinstance(text, str):
            return torch.stack([self.from_text(t, strict) for t in text])
        if strict:
            span = re.match(r"\s*<SIG>((?:<S_\d+>)*)</SIG>\s*", text)
            if span is None:
                reached = re.match(r"\s*(?:<SIG>(?:<S_\d+>)*)?", text).end()
                raise TokenParseError(text, reached, "<SIG>, codes like <S_0>, then </SIG>")
            if span.end() != len(text):
                raise TokenParseError(text, span.end(), "the end of the text")
        else:
            span = re.search(r"<SIG>((?:<S_\d+>)*)</SIG>", text)
            if span is None:
                return torch.zeros(0, dtype=torch.long)
        ids = [int(v) for v in re.findall(r"<S_(\d+)>", span.group(1))]
        return torch.tensor(ids, dtype=torch.long)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"codebook": self.codebook}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.codebook = tensors["codebook"].clone()
