"""Token text of depth maps: ``<DEPTH_START><DEPTH_17>…<DEPTH_END>``, exactly N codes.

A map on the first (square) grid is written exactly as AURORA writes its 10×10 maps. A map on
another grid says so with one marker right after the start token, ``<DEPTH_GRID_5x20>``, so text
alone decodes to the right grid: the same 100 codes read as 10×10 would be stripes.
"""

from __future__ import annotations

import re

import torch

from perceptok.depth.config import DepthGridConfig
from perceptok.errors import TokenParseError


class SpanGrammar:
    """Render and parse one delimited span of a config's ``tokens_per_map`` codes
    ``<{prefix}_{k}>``, with a grid marker ``<{prefix}_GRID_{rows}x{cols}>`` for every grid but
    the first (the token strings are the config's)."""

    def __init__(self, config: DepthGridConfig):
        self.start, self.end = config.start_token, config.end_token
        self.prefix = prefix = config.token_prefix
        self.length = config.tokens_per_map
        self.codebook_size = config.codebook_size
        self.grids = [tuple(g) for g in config.grids]
        self.vocab = config.vocab()
        self.markers = {config.token(f"GRID_{r}x{c}"): (r, c) for r, c in self.grids[1:]}
        self._marker_of = {grid: marker for marker, grid in self.markers.items()}
        self._code = re.compile(rf"<{re.escape(prefix)}_(\d+)>")
        self._any_marker = re.compile(rf"<{re.escape(prefix)}_GRID_\d+x\d+>")

    def render(self, ids: list[int], grid: tuple[int, int] | None = None) -> str:
        if grid is not None and tuple(grid) not in self.grids:
            raise ValueError(f"grid {tuple(grid)} is not one of this tokenizer's grids {self.grids}")
        marker = self._marker_of.get(tuple(grid), "") if grid is not None else ""
        return self.start + marker + "".join(self.vocab[i] for i in ids) + self.end

    def parse(self, text: str, strict: bool = True) -> tuple[list[int], tuple[int, int]]:
        """Codes and grid of one span. Strict: the text is exactly one span (up to surrounding
        white space). Lenient: the first span's codes, truncated or padded (repeating the last
        code) to ``length``, and its grid marker if one comes before the codes; a missing start
        or end token is tolerated."""
        if strict:
            return self._parse_strict(text)
        begin = text.find(self.start)
        body = text[begin + len(self.start):] if begin >= 0 else text
        stop = body.find(self.end)
        body = body[:stop] if stop >= 0 else body
        codes = [m for m in self._code.finditer(body) if int(m.group(1)) < self.codebook_size][: self.length]
        if not codes:
            raise TokenParseError(text, max(begin, 0), f"at least one code like <{self.prefix}_0>")
        marker = self._any_marker.search(body, 0, codes[0].start())
        grid = self.markers.get(marker.group(0), self.grids[0]) if marker else self.grids[0]
        ids = [int(m.group(1)) for m in codes]
        return ids + [ids[-1]] * (self.length - len(ids)), grid

    def _parse_strict(self, text: str) -> tuple[list[int], tuple[int, int]]:
        pos = len(text) - len(text.lstrip())
        if not text.startswith(self.start, pos):
            raise TokenParseError(text, pos, repr(self.start))
        pos += len(self.start)
        grid = self.grids[0]
        marker = self._any_marker.match(text, pos)
        if marker:
            if marker.group(0) not in self.markers:
                raise TokenParseError(text, pos, f"a grid marker of {sorted(self.markers)} or a code")
            grid, pos = self.markers[marker.group(0)], marker.end()
        ids = []
        for n in range(self.length):
            m = self._code.match(text, pos)
            if m is None:
                early = " (the end token came early)" if text.startswith(self.end, pos) else ""
                raise TokenParseError(text, pos, f"code {n + 1} of {self.length} like <{self.prefix}_0>{early}")
            q = int(m.group(1))
            if q >= self.codebook_size or m.group(0) != self.vocab[q]:
                raise TokenParseError(text, pos, f"a code from <{self.prefix}_0> to <{self.prefix}_{self.codebook_size - 1}>")
            ids.append(q)
            pos = m.end()
        if not text.startswith(self.end, pos):
            raise TokenParseError(text, pos, f"{self.end!r} after {self.length} codes")
        pos += len(self.end)
        if text[pos:].strip():
            raise TokenParseError(text, pos, "the end of the text")
        return ids, grid

    def parse_many(self, texts: str | list[str], strict: bool) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """``(N,)`` ids and one grid for a string, ``(B, N)`` and B grids for a list (CPU tensors)."""
        spans = [self.parse(t, strict) for t in ([texts] if isinstance(texts, str) else texts)]
        ids = torch.tensor([s[0] for s in spans], dtype=torch.long, device="cpu").view(len(spans), self.length)
        return (ids[0] if isinstance(texts, str) else ids), [s[1] for s in spans]
