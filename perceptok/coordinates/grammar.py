"""The text grammar of coordinate items, derived from one ``Layout`` (``layouts.py``): checked
labels, the strict parser (which names the first offending character) and the lenient parser
(which keeps every well-formed item in model output). Rendering is ``render.TableRenderer``;
large unlabelled batches are written and read by ``kernels.TextKernels`` from its template.
"""

from __future__ import annotations

import re

from perceptok.coordinates.layouts import Layout
from perceptok.errors import TokenParseError

LABEL_MAX = 200  # characters a lenient label may span (bounds the regex's work on long text)


class _Loose:
    """Builds a regex that tolerates white space around every literal, with no two ``\\s*`` in a
    row (adjacent ones backtrack polynomially on runs of white space). A label pattern ends in
    ``\\s*``, so what follows it starts without one."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def ws(self) -> _Loose:
        if not self.parts or self.parts[-1] != r"\s*":
            self.parts.append(r"\s*")
        return self

    def lit(self, text: str) -> _Loose:
        self.ws()
        for word in text.split():
            self.parts.append(re.escape(word))
            self.ws()
        return self

    def raw(self, pattern: str) -> _Loose:
        self.parts.append(pattern)
        return self

    def build(self) -> str:
        """The pattern, without a leading ``\\s*``: a pattern that starts with one rescans every
        run of white space from each of its characters (quadratic under ``finditer``)."""
        parts = self.parts[1:] if self.parts[:1] == [r"\s*"] else self.parts
        return "".join(parts)


def _label_pattern(template: str, forbidden: str, loose: bool, lazy: bool = False) -> str:
    """A regex for a label written with ``template`` (``{0}`` is the label); the first ``{0}``
    is the group ``label``, later ones must repeat it (strict) or be any label text (lenient,
    starting with a visible character; ``lazy`` where an item follows the label)."""
    chars = "[^" + re.escape(forbidden + "\x00") + "]"
    start = "[^\\s" + re.escape(forbidden) + "\x00]"
    first = f"(?P<label>{start}{chars}{{0,{LABEL_MAX}}}{'?' if lazy else ''})" if loose else f"(?P<label>{chars}+)"
    again = f"{chars}{{0,{LABEL_MAX}}}" if loose else "(?P=label)"
    parts = template.split("{0}")
    if not loose:
        return re.escape(parts[0]) + first + again.join(re.escape(p) for p in parts[1:])
    out = _Loose().lit(parts[0]).raw(first)
    for p in parts[1:-1]:
        out.lit(p).raw(again)
    return out.lit(parts[-1]).build()


LABELS_KEPT = 65_536  # distinct checked labels a grammar remembers


class ItemGrammar:
    """Labels and parsing of items of ``points_per_item`` points in one layout.

    Args:
        layout: the text layout.
        vocab: the text of each coordinate id (``vocab[q]``).
        token_prefix, token_suffix: literal text around the number of a coordinate token.
        decimals: digits after the decimal point of a coordinate number (0: integers).
        points_per_item: 2 for boxes, 1 for points.
        tokens_per_point: 2 (one token per axis) or 1 (one grid-cell token).
        kind: "box" or "point".
    """

    def __init__(self, layout: Layout, vocab: list[str], token_prefix: str, token_suffix: str, decimals: int,
                 points_per_item: int, tokens_per_point: int, kind: str):
        self.layout = layout
        self.vocab = vocab
        self.index = {token: q for q, token in enumerate(vocab)}
        self.num_tokens = len(vocab)
        self.decimals = decimals
        self.points_per_item = points_per_item
        self.tokens_per_point = tokens_per_point
        self.arity = points_per_item * tokens_per_point
        self.kind = kind
        self.prefix, self.suffix = token_prefix, token_suffix
        number = r"\d+(?:\.\d+)?"
        self._token = re.compile(re.escape(token_prefix) + number + re.escape(token_suffix))
        self.literals = self._literals()
        self._steps = self._item_steps()
        L = layout
        self._label = re.compile(_label_pattern(L.label, L.label_forbidden, loose=False))
        self._checked: dict[str, str] = {}  # labels that passed check_label (class names recur)
        self._sep = re.compile(r"\s*" + re.escape(L.separator.strip()) + r"\s*" if L.separator.strip() else r"\s*")
        self._group_sep = re.compile(r"\s*" + re.escape(L.group_sep.strip()) + r"\s*") if L.grouped else None
        self._item_re = re.compile(self._loose_item())
        self._element_re = re.compile(self._loose_element(), re.DOTALL)
        self.example = self.literals[0] + "".join(
            vocab[(self.num_tokens - 1) * (i == self.arity - 1)] + lit for i, lit in enumerate(self.literals[1:]))

    # --- the one description of an item ------------------------------------------------------

    def _literals(self) -> list[str]:
        """The ``arity + 1`` literal texts of an item: before each coordinate, then after the last."""
        L, k = self.layout, self.tokens_per_point
        opener, closer = L.item_delimiters(self.kind)
        out = [opener + L.point_open]
        for i in range(1, self.arity):
            out.append(L.coord_sep if i % k else L.point_close + L.point_sep + L.point_open)
        return out + [L.point_close + closer]

    def _item_steps(self) -> list[tuple[re.Pattern[str] | None, str]]:
        """The strict grammar of one item as (literal regex or None for a token, what it expects)."""
        token = f"a coordinate token like {self.vocab[0]!r}"
        steps: list[tuple[re.Pattern[str] | None, str]] = []
        for i, lit in enumerate(self.literals):
            if lit:
                steps.append((re.compile(re.escape(lit)), repr(lit)))
            if i < self.arity:
                steps.append((None, token))
        return steps

    def _loose_token(self, i: int) -> str:
        return re.escape(self.prefix) + rf"(?P<c{i}>\d{{1,9}}(?:\.\d{{1,9}})?)" + re.escape(self.suffix)

    def _loose_item(self) -> str:
        out = _Loose()
        for i, lit in enumerate(self.literals):
            out.lit(lit)
            if i < self.arity:
                out.raw(self._loose_token(i))
        return out.build()

    def _loose_element(self) -> str:
        """One element, lenient: a group (whose items ``_lenient_item`` then finds) or an item."""
        L = self.layout
        label = f"(?:{_label_pattern(L.label, L.label_forbidden, loose=True, lazy=L.label_before)})"
        if L.grouped:
            body = f"(?P<body>.{{0,{64 * LABEL_MAX}}}?)"
            return label + "?" + _Loose().lit(L.group_open).raw(body).lit(L.group_close).build()
        if L.label_before:
            return label + "?" + self._loose_item()
        return self._loose_item() + label + "?"

    # --- labels ------------------------------------------------------------------------------

    def check_label(self, label: str) -> str:
        checked = self._checked.get(label)
        if checked is not None:
            return checked
        forbidden = self.layout.label_forbidden + "\x00"
        bad = sorted({c for c in label if c in forbidden})
        if not label.strip() or bad:
            shown = [c for c in self.layout.label_forbidden if c.isprintable()]
            raise ValueError(
                f"label {label!r} cannot be written in this layout: labels must be non-empty and "
                f"free of {shown} and control characters (found {bad})"
            )
        if len(self._checked) < LABELS_KEPT:
            self._checked[label] = label.strip()
        return label.strip()

    def label_text(self, label: str | None) -> str:
        """The text of an item's label (``label_absent`` for none)."""
        return self.layout.label_absent if label is None else self.layout.label.replace("{0}", label)

    # --- numbers -----------------------------------------------------------------------------

    def _number_id(self, number: str) -> int | None:
        """The id whose value ``number`` (any spelling) is, or None outside the range."""
        q = round(float(number) * 10 ** self.decimals)
        return q if 0 <= q < self.num_tokens else None

    def _token_id(self, text: str, match: re.Match[str]) -> int:
        token = match.group(0)
        q = self.index.get(token)
        if q is not None:
            return q
        number = token[len(self.prefix) : len(token) - len(self.suffix)]
        q = self._number_id(number)
        if q is None:
            raise TokenParseError(text, match.start(),
                                  f"a coordinate from {self.vocab[0]!r} to {self.vocab[-1]!r}")
        raise TokenParseError(text, match.start(), f"the coordinate spelled {self.vocab[q]!r}")

    # --- strict parsing ----------------------------------------------------------------------

    def _expect(self, text: str, pos: int, literal: str, what: str | None = None) -> int:
        if text.startswith(literal, pos):
            return pos + len(literal)
        raise TokenParseError(text, pos, what or repr(literal))

    def _item(self, text: str, pos: int) -> tuple[list[int], int]:
        ids: list[int] = []
        for regex, expected in self._steps:
            m = (regex or self._token).match(text, pos)
            if m is None:
                raise TokenParseError(text, pos, expected if ids else f"a {self.kind} like {self.example!r}")
            if regex is None:
                ids.append(self._token_id(text, m))
            pos = m.end()
        return ids, pos

    def _element(self, text: str, pos: int, items: list[list[int]], labels: list[str | None]) -> int:
        L = self.layout
        label = None
        if L.label_before and (m := self._label.match(text, pos)):
            label, pos = m.group("label").strip(), m.end()
        if L.grouped:
            pos = self._expect(text, pos, L.group_open, f"a {self.kind} group like {L.group_open + self.example!r}")
            while True:
                ids, pos = self._item(text, pos)
                items.append(ids)
                labels.append(label)
                m = self._group_sep.match(text, pos)
                if m is None:
                    break
                pos = m.end()
            return self._expect(text, pos, L.group_close, f"{L.group_sep!r} or {L.group_close!r}")
        ids, pos = self._item(text, pos)
        if not L.label_before:
            if m := self._label.match(text, pos):
                label, pos = m.group("label").strip(), m.end()
            elif L.label_absent and text.startswith(L.label_absent, pos):
                pos += len(L.label_absent)
        items.append(ids)
        labels.append(label)
        return self._expect(text, pos, L.item_end)

    def _strict(self, text: str) -> tuple[list[list[int]], list[str | None]]:
        """Strict parse; a layout's ``text_open``/``text_close`` (JSON's list brackets) may be
        left out together, as models answer a single object bare."""
        L = self.layout
        items: list[list[int]] = []
        labels: list[str | None] = []
        end = len(text.rstrip())
        pos = len(text) - len(text.lstrip())
        close = ""
        if L.text_open and text.startswith(L.text_open, pos):
            pos, close = pos + len(L.text_open), L.text_close
        if close and text.startswith(close, pos) and pos + len(close) == end:
            return items, labels
        while pos < end:
            pos = self._element(text, pos, items, labels)
            if close and text.startswith(close, pos) and pos + len(close) == end:
                return items, labels
            if pos >= end:
                break
            sep = self._sep.match(text, pos)
            if sep is None or (L.separator.strip() and sep.end() == pos):
                raise TokenParseError(text, pos, f"{L.separator!r} or {close!r}" if close else
                                      f"{L.separator!r} or the end of the text")
            pos = sep.end()
        if close:
            raise TokenParseError(text, pos, repr(close))
        return items, labels

    # --- lenient parsing ---------------------------------------------------------------------

    def _loose_ids(self, match: re.Match[str]) -> list[int] | None:
        ids = []
        for i in range(self.arity):
            number = match.group(f"c{i}")
            q = self.index.get(self.prefix + number + self.suffix)
            q = q if q is not None else self._number_id(number)
            if q is None:
                return None
            ids.append(q)
        return ids

    def _lenient(self, text: str) -> tuple[list[list[int]], list[str | None]]:
        items: list[list[int]] = []
        labels: list[str | None] = []
        for element in self._element_re.finditer(text):
            label = element.group("label")
            label = label.strip() if label is not None else None
            matches = self._item_re.finditer(element.group("body")) if self.layout.grouped else [element]
            for m in matches:
                ids = self._loose_ids(m)
                if ids is not None:
                    items.append(ids)
                    labels.append(label)
        return items, labels

    def parse(self, text: str, strict: bool = True) -> tuple[list[list[int]], list[str | None]]:
        """Items and labels of ``text``.

        Strict: the whole text (up to surrounding white space) must follow the layout, else
        ``TokenParseError`` at the first offending character. Lenient: every well-formed item
        anywhere in the text is kept, the rest is skipped.
        """
        if self.layout.expand_points_tag:
            text = _expand_points_tags(text)
        return self._strict(text) if strict else self._lenient(text)


_POINTS_TAG = re.compile(r"<points\b(?P<attrs>[^<>]*)>(?P<text>[^<]*)</points>")
_ATTR = re.compile(r'\b([xy])(\d+)\s*=\s*"([^"]*)"')
_ALT = re.compile(r'\balt\s*=\s*"([^"]*)"')


def _expand_points_tags(text: str) -> str:
    """Molmo's grouped ``<points x1="…" y1="…" x2="…" … alt="L">L</points>`` as the single-point
    tags it stands for (``<point x="…" y="…" alt="L">L</point>`` joined by spaces)."""

    def single(match: re.Match[str]) -> str:
        coords: dict[str, dict[str, str]] = {}
        for axis, index, value in _ATTR.findall(match.group("attrs")):
            coords.setdefault(index, {})[axis] = value
        alt = _ALT.search(match.group("attrs"))
        tail = f' alt="{alt.group(1)}">{match.group("text")}' if alt else f'>{match.group("text")}'
        points = [f'<point x="{c["x"]}" y="{c["y"]}"{tail}</point>'
                  for _, c in sorted(coords.items(), key=lambda kv: int(kv[0])) if c.keys() == {"x", "y"}]
        return " ".join(points) if points else match.group(0)

    return _POINTS_TAG.sub(single, text) if "<points" in text else text
