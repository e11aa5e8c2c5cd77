"""Text of many images' items at once, from lookup tables of token strings.

Each coordinate id indexes a table of its token text with the layout's literal text folded in
(the first coordinate of an item carries what opens it, the last what closes it), so an item is
``arity`` table lookups, done for the whole batch by one numpy gather. The pieces of every image
are joined in one ``str.join``, each image ending in a NUL that one ``str.split`` cuts at (labels
never hold NUL). Labelled items add a label piece and the element's delimiters as pieces of their
own. Axis legend: ``M`` items of the whole batch, ``B`` images, ``T`` coordinates per item.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from perceptok.coordinates.grammar import ItemGrammar
from perceptok.coordinates.template import TextTemplate

END = "\x00"  # ends each image's text inside the joined batch


def _positions(counts: np.ndarray, labels: Sequence[str | None] | None, grouped: bool) -> tuple[np.ndarray, ...]:
    """Each item's place: first and last of its image, first and last of its group."""
    ends = np.cumsum(counts)
    m = int(ends[-1]) if len(ends) else 0
    first_img = np.zeros(m, bool)
    last_img = np.zeros(m, bool)
    nonempty = counts > 0
    first_img[(ends - counts)[nonempty]] = True
    last_img[(ends - 1)[nonempty]] = True
    if not grouped:
        first_grp = np.ones(m, bool)
    elif labels is None:
        first_grp = first_img
    else:
        same = np.fromiter((a == b for a, b in zip(labels[1:], labels[:-1])), bool, max(m - 1, 0))
        first_grp = first_img | np.concatenate([[True], ~same])[:m]
    last_grp = np.concatenate([first_grp[1:], [True]])[:m] | last_img
    return first_img, last_img, first_grp, last_grp


class TableRenderer:
    """Renders ``(M, T)`` coordinate ids of ``B`` images (``counts`` items each) to ``B`` strings."""

    def __init__(self, grammar: ItemGrammar):
        self.grammar = grammar
        L, lit, T = grammar.layout, grammar.literals, grammar.arity
        self._size = len(grammar.vocab)
        # Lead of an item: first of its image, first of its group, or inside a group.
        self._leads = [L.text_open, L.separator, L.group_sep]
        # Trail of an item: inside a group, last of its group, last of its image.
        self._trails = ["", L.group_close, L.group_close + L.text_close + END]
        absent_before = L.label_absent if L.label_before else ""
        absent_after = "" if L.label_before else L.label_absent
        plain_leads = [lead + absent_before + (L.group_open if k < 2 else "") for k, lead in enumerate(self._leads)]
        plain_trails = [lit[T] + absent_after + L.item_end + trail for trail in self._trails]
        self._plain = self._tables(plain_leads, plain_trails)
        # Unlabelled, an item after the first of its image is inside its group, or a group of its own.
        lead, trail = (2, 0) if L.grouped else (1, 1)
        self.template = TextTemplate(
            first=plain_leads[0] + lit[0], inner=tuple(lit[1:T]),
            between=plain_trails[trail] + plain_leads[lead] + lit[0],
            last=plain_trails[2][: -len(END)], empty=L.text_open + L.text_close, vocab=tuple(grammar.vocab),
            prefix=grammar.prefix, suffix=grammar.suffix, decimals=grammar.decimals)
        self._labelled = self._tables([L.group_open, ""], [lit[T]])

    def _tables(self, leads: list[str], trails: list[str]) -> tuple[np.ndarray, list[int], int, int]:
        """One table of every coordinate's text in each column and variant: column 0 carries a
        lead variant, column T-1 a trail variant (both when T is 1)."""
        lit, T, V = self.grammar.literals, self.grammar.arity, self._size
        segments, offsets, start = [], [], 0
        for c in range(T):
            heads = leads if c == 0 else [""]
            tails = trails if c == T - 1 else [""]
            offsets.append(start)
            for head in heads:
                for tail in tails:
                    # Python strings, not numpy's: numpy's str type drops a trailing END
                    end = tail if c == T - 1 else ""
                    segments.append(np.array([head + lit[c] + v + end for v in self.grammar.vocab], dtype=object))
                    start += V
        return np.concatenate(segments), offsets, len(leads), len(trails)

    def _gather(self, tables: tuple[np.ndarray, list[int], int, int], ids: np.ndarray,
                lead: np.ndarray, trail: np.ndarray) -> np.ndarray:
        """``(M, T)`` object array of each coordinate's text with the chosen lead and trail."""
        table, offsets, _, n_trails = tables
        T, V = ids.shape[1], self._size
        index = ids + np.asarray(offsets)
        if T == 1:
            index[:, 0] += (lead * n_trails + trail) * V
        else:
            index[:, 0] += lead * V
            index[:, -1] += trail * V
        return table.take(index)

    def render(self, ids: np.ndarray, counts: np.ndarray, labels: Sequence[str | None] | None = None) -> list[str]:
        """Texts of ``B`` images: ``ids`` ``(M, T)`` int64 in image order, ``counts`` ``(B,)``,
        ``labels`` one checked label (or None) per item."""
        L = self.grammar.layout
        first_img, last_img, first_grp, last_grp = _positions(counts, labels, L.grouped)
        trail = np.where(last_img, 2, np.where(last_grp, 1, 0))
        if labels is None:
            lead = np.where(first_img, 0, np.where(first_grp, 1, 2))
            pieces = self._gather(self._plain, ids, lead, trail)
        else:
            text = [self.grammar.label_text(lab) for lab in labels]
            m = len(text)
            pieces = np.empty((m, ids.shape[1] + 4), dtype=object)
            pieces[:, 0] = np.asarray(self._leads, dtype=object)[np.where(first_img, 0, np.where(first_grp, 1, 2))]
            before = np.array(text, dtype=object) if L.label_before else np.full(m, "", dtype=object)
            if L.label_before:
                before[~first_grp] = ""
            pieces[:, 1] = before
            pieces[:, 2:-2] = self._gather(self._labelled, ids, np.where(first_grp, 0, 1), np.zeros(m, int))
            pieces[:, -2] = "" if L.label_before else np.array(text, dtype=object)
            pieces[:, -1] = np.asarray([L.item_end + t for t in self._trails], dtype=object)[trail]
        texts = "".join(pieces.ravel().tolist()).split(END)
        del texts[-1]
        if len(texts) == len(counts):
            return texts
        out = np.full(len(counts), L.text_open + L.text_close, dtype=object)
        out[counts > 0] = texts
        return out.tolist()
