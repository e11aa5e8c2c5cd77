"""The text of an unlabelled image as literals around coordinate tokens, in two equivalent forms.

``TextTemplate`` is what the renderer writes (``TableRenderer.template``): ``first`` before the
first item's first token, ``inner[c - 1]`` between tokens ``c - 1`` and ``c`` of an item,
``between`` from an item's last token to the next item's first, ``last`` after the last token,
and ``empty`` for an image with no items. ``RunTemplate`` is the same text seen as digit runs
(what a reader of bytes finds): every coordinate's number is a run (two with decimals: whole and
fraction), and so are digits of the literal text itself (JSON's ``"bbox_2d"``). The compiled
text kernels (``kernels.py``) write with the first and read with the second.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

WHOLE, FRACTION = "\x01", "\x02"  # stand for a coordinate's digits while a template is split into runs
FIXED, WHOLE_RUN, FRACTION_RUN = 0, 1, 2  # the kinds of run


@dataclasses.dataclass(frozen=True)
class TextTemplate:
    first: str
    inner: tuple[str, ...]
    between: str
    last: str
    empty: str
    vocab: tuple[str, ...]  # the text of each coordinate id
    prefix: str  # around the number of every token in ``vocab``
    suffix: str
    decimals: int

    def runs(self) -> RunTemplate | None:
        """The run form, or None where this text cannot be read run by run (text that is not
        ASCII, a token whose number is not its id, literal digits after the last item, two runs
        with nothing between)."""
        pieces = [self.first, *self.inner, self.between, self.last, self.empty, *self.vocab]
        if not all(piece.isascii() for piece in pieces):  # the kernels work on bytes
            return None
        numbers = [v[len(self.prefix): len(v) - len(self.suffix)] for v in self.vocab]
        widths = []
        for q, n in enumerate(numbers):
            whole, _, frac = n.partition(".")
            ok = whole.isdigit() and (frac.isdigit() if self.decimals else not frac)
            if not ok or len(frac) != self.decimals or int(whole) * 10**self.decimals + int(frac or 0) != q:
                return None
            widths.append(len(whole))
        number = WHOLE + ("." + FRACTION if self.decimals else "")
        body = "".join((self.inner[c - 1] if c else "") + self.prefix + number + self.suffix
                       for c in range(len(self.inner) + 1))
        a, b = _split(self.first + body), _split(self.between + body)
        if a[1::2] != b[1::2] or a[2::2] != b[2::2] or any(re.search(r"\d", t) for t in (self.last, self.empty)):
            return None
        literals = [a[0], *a[2:-1:2], a[-1] + b[0], a[-1] + self.last, self.empty]
        if any(not lit for lit in literals[1:-2]):
            return None
        kinds, columns, fixed, fixed_widths = [], [], [], []
        column = -1
        for run in a[1::2]:
            column += run == WHOLE
            kinds.append(FIXED if run.isdigit() else WHOLE_RUN if run == WHOLE else FRACTION_RUN)
            columns.append(max(column, 0))
            fixed.append(int(run) if run.isdigit() else 0)
            fixed_widths.append(len(run) if run.isdigit() else 0)
        return RunTemplate(literals, np.array(kinds), np.array(columns), np.array(fixed), np.array(fixed_widths),
                           np.array(widths), self.decimals, len(self.inner) + 1)


def _split(text: str) -> list[str]:
    """``[literal, run, literal, …, run, literal]``: a run is a digit string, WHOLE or FRACTION."""
    return re.split(f"(\\d+|{WHOLE}|{FRACTION})", text)


@dataclasses.dataclass
class RunTemplate:
    """An image's text as runs: ``literals`` = the text before an image's first run, before
    runs ``1 … R-1`` of an item, between items, after the last run, and of an empty image; each
    run's kind (``FIXED`` literal digits, a coordinate's ``WHOLE_RUN`` or ``FRACTION_RUN``), its
    coordinate column, the literal digits' value and width, and each id's whole-part width."""

    literals: list[str]
    kinds: np.ndarray  # (R,)
    columns: np.ndarray  # (R,)
    fixed: np.ndarray  # (R,)
    fixed_widths: np.ndarray  # (R,)
    widths: np.ndarray  # (V,)
    decimals: int
    arity: int
