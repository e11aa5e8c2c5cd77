"""Compiled text of many unlabelled images at once (numba): one pass over the ids or the bytes.

``TextKernels.write`` writes ``(B, N, T)`` ids with a ``TextTemplate`` (the renderer's text,
literal by literal); ``TextKernels.read`` reads a batch back with its ``RunTemplate``: each image
must be its template's literals with digit runs in between, every run spelled as ``to_text``
spells it (in range, the canonical width, the literal digits as written). Anything else (white
space, labels, a typo) makes ``read`` return None, and the caller parses text by text, which names
the fault; so this path never changes a result, it only makes it faster. ``TextKernels.checked``
builds them and checks them against the table renderer on a sample batch (which is where they
compile, then cached on disk). Importing this module imports numba (about half a second, once).

Axis legend: ``B`` images, ``N`` items per image, ``T`` coordinates per item, ``M`` items.
"""

from __future__ import annotations

import sys

import numba
import numpy as np

from perceptok.coordinates.render import TableRenderer
from perceptok.coordinates.template import FIXED, WHOLE_RUN, RunTemplate, TextTemplate

END = 0  # the byte after each image's text in the written batch


@numba.njit(cache=True, nogil=True)
def _match(buf, p, end, lits, a, b):
    """Position after ``lits[a:b]`` if ``buf`` holds it at ``p`` (before ``end``), else -1."""
    n = b - a
    if p < 0 or p + n > end:
        return -1
    for k in range(n):
        if buf[p + k] != lits[a + k]:
            return -1
    return p + n


@numba.njit(cache=True, nogil=True)
def _read(buf, image_ends, lits, at, kinds, columns, fixed, fixed_widths, widths, decimals, ids, counts):
    """Fills ``ids`` ``(M, T)`` and ``counts`` ``(B,)``; returns M, or -1 if a text is not canonical.
    ``at`` holds the offsets in ``lits`` of the R + 3 literals of a ``RunTemplate``."""
    runs = kinds.shape[0]
    vocab_size = widths.shape[0]
    scale = 10**decimals
    m = 0
    start = 0
    for i in range(image_ends.shape[0]):
        end = image_ends[i]
        if _match(buf, start, end, lits, at[runs + 2], at[runs + 3]) == end:
            counts[i] = 0
            start = end
            continue
        p = _match(buf, start, end, lits, at[0], at[1])
        n = 0
        while p >= 0:
            if m + n >= ids.shape[0]:
                return -1
            whole = 0
            whole_width = 0
            for j in range(runs):
                if j > 0:
                    p = _match(buf, p, end, lits, at[j], at[j + 1])
                    if p < 0:
                        return -1
                value = 0
                q = p
                while q < end and q - p < 18:
                    digit = np.int64(buf[q]) - 48
                    if digit < 0 or digit > 9:
                        break
                    value = value * 10 + digit
                    q += 1
                width = q - p
                if width == 0 or (q < end and 48 <= buf[q] <= 57):
                    return -1
                p = q
                kind = kinds[j]
                if kind == FIXED:
                    if value != fixed[j] or width != fixed_widths[j]:
                        return -1
                    continue
                if kind == WHOLE_RUN:
                    whole, whole_width = value, width
                    if decimals:
                        continue
                    value = 0
                elif width != decimals:
                    return -1
                value += whole * scale
                if value >= vocab_size or widths[value] != whole_width:
                    return -1
                ids[m + n, columns[j]] = value
            n += 1
            if _match(buf, p, end, lits, at[runs + 1], at[runs + 2]) == end:
                break
            p = _match(buf, p, end, lits, at[runs], at[runs + 1])
        if p < 0:
            return -1
        counts[i] = n
        m += n
        start = end
    return m


@numba.njit(cache=True, nogil=True)
def _read_str(text, image_ends, lits, at, kinds, columns, fixed, fixed_widths, widths, decimals, ids, counts):
    """``_read`` on the characters of a Python str, in place: numba passes a str's own buffer, so
    one-byte text (CPython's compact Latin-1 strings, ASCII included) is read without a copy; any
    other text is declined (-1)."""
    if text._kind != 1:  # PyUnicode_1BYTE_KIND
        return -1
    buf = numba.carray(text._data, text._length, np.uint8)
    return _read(buf, image_ends, lits, at, kinds, columns, fixed, fixed_widths, widths, decimals, ids, counts)


@numba.njit(cache=True, nogil=True, inline="always")
def _append(out, o, acc, fill, words, lengths, i):
    """Appends piece ``i`` of a word table to the output words ``out``: ``acc`` holds the ``fill``
    bytes (0-7) not yet stored. Returns the new ``o, acc, fill``."""
    left = lengths[i]
    w = 0
    while left > 0:
        word = words[i, w]
        take = min(left, 8)
        acc |= word << np.uint64(8 * fill)
        if fill + take >= 8:
            out[o] = acc
            o += 1
            acc = word >> np.uint64(8 * (8 - fill)) if fill > 0 else np.uint64(0)
            fill += take - 8
        else:
            fill += take
        left -= take
        w += 1
    return o, acc, fill


@numba.njit(cache=True, nogil=True)
def _write(rows, pad, tokens, token_lengths, lits, lit_lengths, out):
    """Writes the text of each image of ``rows`` ``(B, N, T)`` and an END byte into the words
    ``out`` (long enough: see ``TextKernels.write``), leaving out items that hold ``pad``. The
    tables hold pieces as little-endian words: ``tokens`` one per id, ``lits`` first, inner
    1 … T-1, between, last, empty and END. Returns the bytes written."""
    arity = rows.shape[2]
    o, acc, fill = 0, np.uint64(0), 0
    for i in range(rows.shape[0]):
        n = 0
        for k in range(rows.shape[1]):
            keep = True
            for c in range(arity):
                keep = keep and rows[i, k, c] != pad
            if not keep:
                continue
            o, acc, fill = _append(out, o, acc, fill, lits, lit_lengths, arity if n else 0)
            for c in range(arity):
                if c > 0:
                    o, acc, fill = _append(out, o, acc, fill, lits, lit_lengths, c)
                o, acc, fill = _append(out, o, acc, fill, tokens, token_lengths, rows[i, k, c])
            n += 1
        o, acc, fill = _append(out, o, acc, fill, lits, lit_lengths, arity + 1 if n else arity + 2)
        o, acc, fill = _append(out, o, acc, fill, lits, lit_lengths, arity + 3)
    out[o] = acc
    return 8 * o + fill


def _words(pieces: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """ASCII ``pieces`` as a table of little-endian words (a row each, zero-padded) and their lengths."""
    data = [p.encode("ascii") for p in pieces]
    width = 8 * max(1, -(-max(map(len, data)) // 8))
    table = np.zeros((len(data), width), dtype=np.uint8)
    for row, b in zip(table, data):
        row[: len(b)] = np.frombuffer(b, dtype=np.uint8)
    return table.view("<u8").astype(np.uint64), np.array([len(b) for b in data], dtype=np.int64)


class TextKernels:
    """The compiled write and read of one convention's unlabelled text."""

    def __init__(self, template: TextTemplate, runs: RunTemplate):
        self.runs = runs
        self._tokens = _words(list(template.vocab))
        self._lits = _words([template.first, *template.inner, template.between, template.last, template.empty,
                             chr(END)])
        self._read_lits = np.frombuffer("".join(runs.literals).encode("ascii"), dtype=np.uint8)
        self._read_at = np.cumsum([0] + [len(lit) for lit in runs.literals])
        # the fewest bytes of an item after the first of its image: its literals and a digit a run
        self._item_bytes = sum(map(len, runs.literals[1 : len(runs.kinds) + 1])) + len(runs.kinds)

    @classmethod
    def checked(cls, renderer: TableRenderer) -> TextKernels | None:
        """Kernels of the table ``renderer``'s template that wrote and read a sample batch as the
        renderer does (images of 0, 1 and 3 items, the vocabulary's first and last ids among
        them); this is also where they compile. None where the template cannot be read run by
        run; AssertionError where they disagree."""
        template = renderer.template
        runs = template.runs()
        if runs is None:
            return None
        kernels = cls(template, runs)
        counts = np.array([0, 1, 3, 0, 2])
        size = len(template.vocab)
        flat = np.random.default_rng(0).integers(0, size, (int(counts.sum()), runs.arity))
        flat[0], flat[-1] = 0, size - 1
        rows = np.full((len(counts), int(counts.max()), runs.arity), -1, dtype=np.int64)
        rows[np.arange(rows.shape[1]) < counts[:, None]] = flat
        texts = renderer.render(flat, counts)
        if kernels.write(rows, -1) != texts:
            raise AssertionError("the compiled writer's text differs from the table renderer's")
        back = kernels.read(texts)
        if back is None or not np.array_equal(back[0], flat) or not np.array_equal(back[1], counts):
            raise AssertionError("the compiled reader does not read the table renderer's text back")
        return kernels

    def write(self, rows: np.ndarray, pad: int) -> list[str]:
        """Texts of ``rows`` ``(B, N, T)`` int64 ids (items holding ``pad`` left out)."""
        B, N, T = rows.shape
        lit, token = int(self._lits[1].max()), int(self._tokens[1].max())
        size = B * (lit + 1) + B * N * (lit + T * (token + lit))  # items (a lead, T tokens, T-1 inner), tail, END
        out = np.empty(size // 8 + 1, dtype=np.uint64)
        n = _write(np.ascontiguousarray(rows), pad, *self._tokens, *self._lits, out)
        if sys.byteorder == "big":  # the words' values are little-endian text
            out = out.byteswap()
        texts = str(memoryview(out.view(np.uint8)[:n]), "ascii").split(chr(END))
        del texts[-1]
        return texts

    def read(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
        """``(M, T)`` ids and ``(B,)`` counts of canonical ``texts``, or None to parse them one by one."""
        text = "".join(texts)
        image_ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)))
        r = self.runs
        bound = len(texts) + len(text) // max(self._item_bytes, 1)
        ids = np.empty((bound, r.arity), dtype=np.int64)
        counts = np.empty(len(texts), dtype=np.int64)
        m = _read_str(text, image_ends, self._read_lits, self._read_at, r.kinds, r.columns, r.fixed, r.fixed_widths,
                      r.widths, r.decimals, ids, counts)
        return (ids[:m], counts) if m >= 0 else None
