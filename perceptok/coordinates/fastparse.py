"""Strict parsing of many unlabelled texts at once, on their bytes, where they are canonical.

A canonical text (what ``to_text`` writes) is its layout's literal text with the coordinates'
digits in between. A batch is accepted when (1) deleting its digits leaves exactly the literal
text that its item counts imply; (2) each run of digits sits between the two characters that
surround that coordinate in the layout (a pair found nowhere else in the literal text, checked
once per grammar, so every run is in its place); and (3) every run spells a coordinate the
canonical way (in range, no stray leading zero, the preset's number of decimals). All three are
numpy over the batch's bytes and runs. A batch that fails any check (labels, extra white space, a
typo) goes to the step-by-step parser, which accepts it or names the offending character, so
this path only ever speeds parsing up and never changes a result.
"""

from __future__ import annotations

import re

import numpy as np

from perceptok.coordinates.render import END, TableRenderer

_DIGITS = b"0123456789"
_PAD = "\x01" * 8  # after the batch, so reading a few bytes past any run stays inside


def _runs(text: str) -> list[re.Match[str]]:
    return list(re.finditer(r"\d+", text))


class CanonicalReader:
    """Reads canonical texts of one grammar (see the module docstring), or declines."""

    def __init__(self, renderer: TableRenderer):
        self.renderer = renderer
        g = renderer.grammar
        L = g.layout
        self.arity, self.decimals = g.arity, g.decimals
        numbers = [v[len(g.prefix) : len(v) - len(g.suffix)] for v in g.vocab]
        self.width = np.array([len(n.split(".")[0]) for n in numbers])  # digits of each id's whole part
        per_token = 2 if self.decimals else 1
        columns, at = [], 0
        for c in range(g.arity):
            at += len(_runs(g.literals[c]))
            columns.append(at)
            at += per_token
        self.runs_per_item = at + len(_runs(g.literals[-1]))
        self.columns = np.array(columns)
        tokens = {c + k for c in columns for k in range(per_token)}
        self.fixed = np.array([j for j in range(self.runs_per_item) if j not in tokens], dtype=np.int64)
        self._skeletons: dict[int, bytes] = {}
        frame = L.text_open + L.text_close + L.separator + L.group_open + L.group_close + L.group_sep
        self.usable = all(n.isascii() for n in numbers) and not _runs(frame + L.item_end + L.label_absent)
        self.usable = self.usable and self._learn_boundaries()

    def _zero_text(self, counts: list[int]) -> str:
        ids = np.zeros((sum(counts), self.arity), dtype=np.int64)
        return END.join(self.renderer.render(ids, np.array(counts))) + END

    def _learn_boundaries(self) -> bool:
        """The pairs of characters around each run slot of an item (``allowed[slot, pair]``),
        from sample texts; False unless each pair appears in the literal text only where a run
        goes (then a run between such a pair is in its place)."""
        text = self._zero_text([1, 3, 2])
        runs = _runs(text)
        if len(runs) != 6 * self.runs_per_item or runs[0].start() == 0:
            return False
        self.allowed = np.zeros((self.runs_per_item, 1 << 16), dtype=bool)
        for i, m in enumerate(runs):
            self.allowed[i % self.runs_per_item, ord(text[m.start() - 1]) * 256 + ord(text[m.end()])] = True
        literal = [int(runs[j].group()) for j in self.fixed]  # digits of the layout's own text
        self.fixed_values = np.array(literal, dtype=np.int64)
        self.fixed_widths = np.array([len(runs[j].group()) for j in self.fixed], dtype=np.int64)
        wanted = set(np.flatnonzero(self.allowed.any(0)).tolist())
        skeleton = re.sub(r"\d+", "", text)
        found = sum(ord(skeleton[p - 1]) * 256 + ord(skeleton[p]) in wanted for p in range(1, len(skeleton)))
        return found == len(runs)

    def _skeleton(self, n: int) -> bytes:
        """The digit-free text of an image with ``n`` items, and its END."""
        if n not in self._skeletons:
            self._skeletons[n] = self._zero_text([n]).encode().translate(None, _DIGITS)
        return self._skeletons[n]

    @staticmethod
    def _values(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The integers that the digit runs ``buf[starts : starts + lengths]`` spell."""
        value = buf[starts].astype(np.int32) - 48
        for k in range(1, int(lengths.max(initial=0))):
            value = np.where(k < lengths, value * 10 + (buf[starts + k].astype(np.int32) - 48), value)
        return value

    def read(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """``(M, T)`` ids and ``(B,)`` counts of canonical ``texts``, or None to parse them one by one."""
        if not self.usable or not texts:
            return None
        try:
            data = END.join([*texts, _PAD]).encode("ascii")  # every text ends in END, then the pad: one copy
        except UnicodeEncodeError:
            return None
        buf = np.frombuffer(data, dtype=np.uint8)
        digit = (buf - np.uint8(48)) < 10  # '0'..'9' (bytes below '0' wrap round to ≥ 208)
        edges = np.flatnonzero(digit[1:] != digit[:-1]) + 1
        if digit[0] or len(edges) % 2:
            return None
        starts, ends = edges[0::2], edges[1::2]
        image_ends = np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)) + 1) - 1
        counts, rest = np.divmod(np.diff(np.searchsorted(starts, image_ends), prepend=0), self.runs_per_item)
        if rest.any() or (len(starts) and starts[-1] > image_ends[-1]):
            return None
        skeletons = np.array([self._skeleton(n) for n in range(int(counts.max(initial=0)) + 1)], dtype=object)
        if data.translate(None, _DIGITS) != b"".join(skeletons[counts].tolist()) + _PAD.encode():
            return None
        m = int(counts.sum())
        pairs = (buf[starts - 1].astype(np.int32) * 256 + buf[ends]).reshape(m, self.runs_per_item)
        if not all(self.allowed[j][pairs[:, j]].all() for j in range(self.runs_per_item)):
            return None
        if len(self.fixed):  # the layout's own digits (JSON's "bbox_2d") are as written
            fixed = (np.arange(m)[:, None] * self.runs_per_item + self.fixed).ravel()
            widths = ends[fixed] - starts[fixed]
            if (widths != np.tile(self.fixed_widths, m)).any() or \
                    (self._values(buf, starts[fixed], widths) != np.tile(self.fixed_values, m)).any():
                return None
        at = (np.arange(m)[:, None] * self.runs_per_item + self.columns).ravel()
        width = ends[at] - starts[at]
        ids = self._values(buf, starts[at], width)
        if self.decimals:
            frac = ends[at + 1] - starts[at + 1]
            if (frac != self.decimals).any():
                return None
            ids = ids * 10**self.decimals + self._values(buf, starts[at + 1], frac)
        vocab_size = len(self.width)
        if (ids >= vocab_size).any() or (width != self.width[np.minimum(ids, vocab_size - 1)]).any():
            return None
        return ids.reshape(m, self.arity).astype(np.int64), counts
