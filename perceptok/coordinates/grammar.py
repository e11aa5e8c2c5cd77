"""Token text of coordinate items (boxes or points) in each system's layout.

An item is ``item_open + point_sep.join(point_open + coord_sep.join(tokens) + point_close) +
item_close``, optionally labelled, and items are joined by ``separator``:

=========  =======================================================================
aurora     ``dog (<PIXEL_12>,<PIXEL_40>,<PIXEL_200>,<PIXEL_301>), cat (…)``
paligemma  ``<loc0100><loc0020><loc0900><loc0500> dog ; <loc…>… cat``
florence2  ``dog<loc_12><loc_40><loc_600><loc_901>cat<loc_…>…``
kosmos2    ``<phrase>dog</phrase><object><patch_index_0044><patch_index_0863></object>``
qwen2vl    ``<|object_ref_start|>dog<|object_ref_end|><|box_start|>(12,40),(600,901)<|box_end|>``
=========  =======================================================================
"""

from __future__ import annotations

import dataclasses
import re

from perceptok.errors import TokenParseError


@dataclasses.dataclass(frozen=True)
class Layout:
    item_open: str = ""
    item_close: str = ""
    point_open: str = ""
    point_close: str = ""
    coord_sep: str = ""  # between the coordinate tokens of one point
    point_sep: str = ""  # between the two corners of a box
    separator: str = ""  # between items
    label_before: bool = True  # label precedes the item (else follows it)
    label_open: str = ""
    label_close: str = ""
    label_forbidden: str = "<>"  # characters a label may not hold in this layout


LAYOUTS: dict[str, Layout] = {
    "aurora": Layout(item_open="(", item_close=")", coord_sep=",", point_sep=",", separator=", ",
                     label_close=" ", label_forbidden="<>(),"),
    "paligemma": Layout(separator=" ; ", label_before=False, label_open=" ", label_forbidden="<>;"),
    "florence2": Layout(),
    "kosmos2": Layout(item_open="<object>", item_close="</object>", label_open="<phrase>",
                      label_close="</phrase>"),
    "qwen2vl": Layout(item_open="<|box_start|>", item_close="<|box_end|>", point_open="(",
                      point_close=")", coord_sep=",", point_sep=",",
                      label_open="<|object_ref_start|>", label_close="<|object_ref_end|>"),
}


def _lit(text: str) -> str:
    """A regex for literal ``text`` that accepts white space around it."""
    stripped = text.strip()
    return r"\s*" + re.escape(stripped) + r"\s*" if stripped else r"\s*"


class ItemGrammar:
    """Renders and parses items of ``points_per_item`` points in one layout.

    Args:
        layout: the text layout.
        token_prefix, token_suffix: literal text around the number of a coordinate token.
        token_format: str.format pattern of a coordinate token.
        num_tokens: coordinate ids are 0..num_tokens-1.
        points_per_item: 2 for boxes, 1 for points.
        tokens_per_point: 2 (one token per axis) or 1 (one grid-cell token).
        kind: "box" or "point", for error messages.
    """

    def __init__(self, layout: Layout, token_prefix: str, token_suffix: str, token_format: str,
                 num_tokens: int, points_per_item: int, tokens_per_point: int, kind: str):
        self.layout = layout
        self.token_format = token_format
        self.num_tokens = num_tokens
        self.points_per_item = points_per_item
        self.tokens_per_point = tokens_per_point
        self.arity = points_per_item * tokens_per_point
        self.kind = kind
        self._prefix, self._suffix = token_prefix, token_suffix
        self._pieces = self._item_pieces()
        chars = "[^" + re.escape(layout.label_forbidden) + "]+"
        self._label = re.compile(re.escape(layout.label_open) + f"({chars})" + re.escape(layout.label_close))
        self._lenient = re.compile(self._lenient_pattern())
        sep = layout.separator
        self._sep = re.compile(_lit(sep) if sep.strip() else r"\s*")
        self.example = self.render([[0] * (self.arity - 1) + [num_tokens - 1]], None)

    def _lenient_pattern(self) -> str:
        """One regex for a whole item that tolerates white space around every literal part."""
        L = self.layout
        # Each coordinate token is its own named group c0..c{arity-1}.
        tokens = [re.escape(self._prefix) + rf"(?P<c{i}>\d+)" + re.escape(self._suffix) for i in range(self.arity)]
        k = self.tokens_per_point
        points = [
            _lit(L.point_open)
            + _lit(L.coord_sep).join(tokens[p * k : (p + 1) * k])
            + _lit(L.point_close)
            for p in range(self.points_per_item)
        ]
        item = _lit(L.item_open) + _lit(L.point_sep).join(points) + _lit(L.item_close)
        chars = "[^" + re.escape(L.label_forbidden) + "]"
        if L.label_before:
            label = f"(?:{_lit(L.label_open)}(?P<label>{chars}+?){_lit(L.label_close)})?"
            return label + item
        return item + f"(?:{_lit(L.label_open)}(?P<label>{chars}+))?"

    def _item_pieces(self) -> list[tuple[re.Pattern[str], str, bool]]:
        """The strict grammar of one unlabelled item as (regex, what it expects) steps, so that a
        parse error names the exact character and the piece expected there."""
        L = self.layout
        token = (re.compile(re.escape(self._prefix) + r"\d+" + re.escape(self._suffix)),
                 f"a coordinate token like {self.token_format.format(0)!r}", True)
        literals = [L.item_open]
        pieces: list[tuple[re.Pattern[str], str, bool]] = []

        def flush() -> None:
            text = "".join(literals)
            if text:
                pieces.append((re.compile(re.escape(text)), repr(text), False))
            literals.clear()

        for p in range(self.points_per_item):
            literals.append((L.point_sep if p else "") + L.point_open)
            for c in range(self.tokens_per_point):
                literals.append(L.coord_sep if c else "")
                flush()
                pieces.append(token)
            literals.append(L.point_close)
        literals.append(L.item_close)
        flush()
        return pieces

    # --- rendering ----------------------------------------------------------------------------

    def check_label(self, label: str) -> str:
        bad = sorted({c for c in label if c in self.layout.label_forbidden})
        if not label.strip() or bad:
            raise ValueError(
                f"label {label!r} cannot be written in this layout: labels must be non-empty and "
                f"free of {list(self.layout.label_forbidden)} (found {bad})"
            )
        return label.strip()

    def render(self, items: list[list[int]], labels: list[str | None] | None) -> str:
        """Text of ``items`` (each a list of ``arity`` coordinate ids) with optional labels."""
        L = self.layout
        k = self.tokens_per_point
        out = []
        for n, ids in enumerate(items):
            tokens = [self.token_format.format(int(i)) for i in ids]
            points = [L.point_open + L.coord_sep.join(tokens[p * k : (p + 1) * k]) + L.point_close
                      for p in range(self.points_per_item)]
            text = L.item_open + L.point_sep.join(points) + L.item_close
            label = labels[n] if labels is not None else None
            if label is not None:
                label = L.label_open + self.check_label(label) + L.label_close
                text = label + text if L.label_before else text + label
            out.append(text)
        return L.separator.join(out)

    # --- parsing ------------------------------------------------------------------------------

    def _lenient_ids(self, match: re.Match[str]) -> list[int] | None:
        """The coordinate ids of a leniently matched item, or ``None`` if one is out of range."""
        ids = [int(match.group(f"c{i}")) for i in range(self.arity)]
        return ids if max(ids) < self.num_tokens else None

    def _parse_item(self, text: str, pos: int, items: list[list[int]], labels: list[str | None]) -> int:
        """Strictly parse one item at ``pos``; append it and return the position after it."""
        label = None
        if self.layout.label_before and (m := self._label.match(text, pos)):
            label, pos = m.group(1).strip(), m.end()
        ids = []
        for regex, expected, is_token in self._pieces:
            m = regex.match(text, pos)
            if m is None:
                raise TokenParseError(text, pos, expected if ids else f"a {self.kind} like {self.example!r}")
            if is_token:
                ids.append(self._token_id(text, m))
            pos = m.end()
        if not self.layout.label_before and (m := self._label.match(text, pos)):
            label, pos = m.group(1).strip(), m.end()
        items.append(ids)
        labels.append(label)
        return pos

    def _token_id(self, text: str, match: re.Match[str]) -> int:
        token = match.group(0)
        q = int(token[len(self._prefix) : len(token) - len(self._suffix)])
        if q >= self.num_tokens:
            raise TokenParseError(
                text, match.start(), f"a coordinate token from {self.token_format.format(0)!r} to "
                f"{self.token_format.format(self.num_tokens - 1)!r}")
        if self.token_format.format(q) != token:
            raise TokenParseError(text, match.start(), f"the token spelled {self.token_format.format(q)!r}")
        return q

    def parse(self, text: str, strict: bool = True) -> tuple[list[list[int]], list[str | None]]:
        """Items and labels of ``text``.

        Strict: the whole text (up to surrounding white space) must be items joined by the
        layout's separator, else ``TokenParseError`` at the first offending character. Lenient:
        every well-formed item anywhere in the text is kept, the rest is skipped.
        """
        items: list[list[int]] = []
        labels: list[str | None] = []
        if not strict:
            for match in self._lenient.finditer(text):
                ids = self._lenient_ids(match)
                if ids is not None:
                    items.append(ids)
                    label = match.group("label")
                    labels.append(label.strip() if label is not None else None)
            return items, labels
        end = len(text.rstrip())
        pos = len(text) - len(text.lstrip())
        while pos < end:
            pos = self._parse_item(text, pos, items, labels)
            if pos >= end:
                break
            sep = self._sep.match(text, pos)
            if sep is None or (self.layout.separator.strip() and sep.end() == pos):
                raise TokenParseError(text, pos, f"{self.layout.separator!r} or the end of the text")
            pos = sep.end()
        return items, labels
