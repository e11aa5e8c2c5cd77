"""Token text of depth maps: ``<DEPTH_START><DEPTH_17>…<DEPTH_END>``, exactly N codes."""

from __future__ import annotations

import re

import torch

from perceptok.errors import TokenParseError


class SpanGrammar:
    """Render and parse one delimited span of ``length`` codes ``<{prefix}_{k}>``."""

    def __init__(self, prefix: str, length: int, codebook_size: int):
        self.start, self.end = f"<{prefix}_START>", f"<{prefix}_END>"
        self.prefix = prefix
        self.length = length
        self.codebook_size = codebook_size
        self._code = re.compile(rf"<{re.escape(prefix)}_(\d+)>")

    def render(self, ids: list[int]) -> str:
        return self.start + "".join(f"<{self.prefix}_{i}>" for i in ids) + self.end

    def parse(self, text: str, strict: bool = True) -> list[int]:
        """Codes of one span. Strict: the text is exactly one span (up to surrounding white space).
        Lenient: the first span's codes, truncated or padded (repeating the last code) to
        ``length``; a missing start or end token is tolerated."""
        if strict:
            return self._parse_strict(text)
        begin = text.find(self.start)
        body = text[begin + len(self.start):] if begin >= 0 else text
        stop = body.find(self.end)
        body = body[:stop] if stop >= 0 else body
        ids = [int(m) for m in self._code.findall(body) if int(m) < self.codebook_size][: self.length]
        if not ids:
            raise TokenParseError(text, max(begin, 0), f"at least one code like <{self.prefix}_0>")
        return ids + [ids[-1]] * (self.length - len(ids))

    def _parse_strict(self, text: str) -> list[int]:
        pos = len(text) - len(text.lstrip())
        if not text.startswith(self.start, pos):
            raise TokenParseError(text, pos, repr(self.start))
        pos += len(self.start)
        ids = []
        for n in range(self.length):
            m = self._code.match(text, pos)
            if m is None:
                early = " (the end token came early)" if text.startswith(self.end, pos) else ""
                raise TokenParseError(text, pos, f"code {n + 1} of {self.length} like <{self.prefix}_0>{early}")
            q = int(m.group(1))
            if q >= self.codebook_size or m.group(0) != f"<{self.prefix}_{q}>":
                raise TokenParseError(text, pos, f"a code from <{self.prefix}_0> to <{self.prefix}_{self.codebook_size - 1}>")
            ids.append(q)
            pos = m.end()
        if not text.startswith(self.end, pos):
            raise TokenParseError(text, pos, f"{self.end!r} after {self.length} codes")
        pos += len(self.end)
        if text[pos:].strip():
            raise TokenParseError(text, pos, "the end of the text")
        return ids

    def ids_tensor(self, texts: str | list[str], strict: bool) -> torch.Tensor:
        if isinstance(texts, str):
            return torch.tensor(self.parse(texts, strict), dtype=torch.long, device="cpu")
        return torch.tensor([self.parse(t, strict) for t in texts], dtype=torch.long, device="cpu").view(len(texts), self.length)
