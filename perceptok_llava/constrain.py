"""Constrained decoding that keeps perception spans well formed, as a ``LogitsProcessor``
(no edits to transformers' files, unlike the original).

Rules, applied to each whole sequence, prompt included, so a prompt that ends in
``<DEPTH_START>`` makes the model write a depth map (batched; greedy, sampling and beam search):

- a delimited span (depth): after ``<DEPTH_START>`` optionally one grid marker
  (``<DEPTH_GRID_5x20>``) as the first token, then exactly the tokenizer's number of codes, then
  ``<DEPTH_END>``; codes, markers and ``<DEPTH_END>`` are forbidden outside a span;
- coordinate boxes and points: a coordinate token may start an item only right after the
  layout's opener (``(`` for aurora); then the item's remaining coordinate tokens follow, with
  the layout's single-token punctuation (``,`` and ``)``) between them where the LM has those as
  tokens, and a ``,`` is always followed by a coordinate (so ``,)`` cannot happen);
- free text elsewhere.

The rules are written once, as Python (``_advance``: a state and a token → the next state;
``_masked``: a state → the tokens it forbids). For decoding they are compiled into a small
automaton (``_Automaton``): LM tokens fall into a few classes that the rules cannot tell apart,
the states reachable from the start are enumerated over those classes, and each state's mask
is one row of a table. The automaton's tables live on the logits' device (``_DeviceTables``,
made once per device and width), and so does each row's state: a step matches each row to the
row of the last call it grew from (beam search reorders rows), advances its state by its new
token with two gathers and masks the batch with one gather of mask rows and one
``masked_fill``. Nothing is read back to the host, so on a GPU the step never waits for the
model's forward pass (a host sync there costs the overlap of the CPU's work with the GPU's,
which a CUDA-graph decoding step makes visible); no row is read whole again (the comparison
grows with the sequence, one elementwise pass on the device). The first call reads each row
whole on the host. A row that grew from no row
of the last call (possible only outside ``generate``) is found from a flag copied to the host
without waiting, and every row is read whole again once the flag has arrived (at the next
call under ``generate``, which reads the new tokens at every step). The rules' tables are CPU
tensors whatever torch's default device is.
"""

from __future__ import annotations

import dataclasses
import re
import weakref
from collections.abc import Callable

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

    def __post_init__(self) -> None:
        self.marker_set = set(self.markers.tolist())

    def allowed(self, after: int, marked: bool) -> torch.Tensor:
        """LM ids allowed next, ``after`` tokens since the start token (``marked``: the first was
        a grid marker)."""
        if not after:
            return torch.cat([self.codes, self.markers])
        return self.codes if after - marked < self.length else torch.tensor([self.end], device="cpu")


@dataclasses.dataclass
class _Items:
    coords: torch.Tensor  # LM ids of coordinate tokens
    lengths: set[int]  # coordinate tokens an item may have (4 for boxes, 2 for points sharing them)
    between: int | None  # LM id of the punctuation between coordinates (None: adjacent)
    close: int | None  # LM id of the punctuation closing an item
    opener: str  # text that must come right before an item's first coordinate ("(" for aurora; "" none)
    text_of: Callable[[int], str]  # an LM id's text

    def __post_init__(self) -> None:
        self.coord_set = set(self.coords.tolist())
        # A tag opener (Kosmos-2's <object>) always starts an item, and its closing tag belongs to
        # items only; "(" also opens plain text such as "(A)".
        self.tag = bool(re.fullmatch(r"<[A-Za-z_]+>", self.opener))

    def step(self, state: tuple[int, bool, bool], token: int) -> tuple[int, bool, bool]:
        """The item grammar's state after ``token``: (coordinates in the open item, a coordinate
        was last (punctuation or the end may follow), the text so far ends with the opener)."""
        count, after_coord, _ = state
        longest = max(self.lengths)
        if count and after_coord and token == self.between and count < longest:
            return count, False, False
        if token in self.coord_set and (count == 0 or not after_coord or self.between is None) and count < longest:
            count += 1
            return (0, False, False) if count == longest and self.close is None else (count, True, False)
        if count and after_coord and token == self.close and count in self.lengths:
            return 0, False, False
        # anything else ends the item (only possible in unconstrained text)
        if token in self.coord_set:
            return 1, True, False
        return 0, False, not self.opener or self.text_of(token).rstrip().endswith(self.opener)

    def allowed(self, state: tuple[int, bool, bool]) -> torch.Tensor | None:
        """The ids allowed next in ``state``, or None when the text is free."""
        count, after_coord, opened = state
        if count == 0:
            return self.coords if self.tag and opened else None
        longest = max(self.lengths)
        if not after_coord:  # right after the punctuation between coordinates
            return self.coords
        options = ([self.between] if self.between is not None else self.coords.tolist()) if count < longest else []
        if count in self.lengths:
            if self.close is None:
                return None  # the item may end here
            options.append(self.close)
        return torch.tensor(options, dtype=torch.long, device="cpu")

    def may_start(self, state: tuple[int, bool, bool]) -> bool:
        """Whether free text may go on with a coordinate (only right after the opener)."""
        return state[2] or not self.opener


@dataclasses.dataclass(frozen=True)
class _RowState:
    """Where one sequence stands: the open span (index, -1 for none; tokens since its start;
    whether the first was a grid marker), and each item grammar's state."""

    span: int
    after: int
    marked: bool
    items: tuple[tuple[int, bool, bool], ...]


def _single_token(lm_tok, text: str) -> int | None:
    ids = lm_tok(text, add_special_tokens=False)["input_ids"]
    return ids[0] if len(ids) == 1 else None


class PerceptionLogitsProcessor:
    """``LogitsProcessor`` for ``model.generate(logits_processor=[...])``. One processor follows
    one ``generate`` call (it keeps each row's state from step to step); the compiled automaton
    is shared by every processor of the same vocabulary and LM tokenizer (treat both as fixed
    once generation starts)."""

    def __init__(self, vocab: PerceptionVocab, lm_tokenizer):
        lm_tok = getattr(lm_tokenizer, "tokenizer", lm_tokenizer)
        self._lm_tok, self._texts = lm_tok, None
        self.spans: list[_Span] = []
        self.items: list[_Items] = []
        by_coords: dict[tuple[int, ...], _Items] = {}
        for name, tok in vocab.tokenizers.items():
            ids = torch.tensor(vocab.lm_ids[name], device="cpu")
            if name in vocab.delimiters and len(vocab.delimiters[name]) == 2:
                d = vocab.delimiters[name]
                markers = torch.tensor(vocab.markers.get(name, []), dtype=torch.long, device="cpu")
                self.spans.append(_Span(d["start"], d["end"], ids, getattr(tok, "tokens_per_map"), markers))
            elif isinstance(tok, CoordinateTokenizer):
                key = tuple(vocab.lm_ids[name])
                if key in by_coords:
                    by_coords[key].lengths.add(tok.tokens_per_item)
                    continue
                # The item's literal text, from the grammar that renders and parses it.
                opener, *between, closer = tok.grammar.literals
                sep = between[0] if between else ""
                by_coords[key] = _Items(ids, {tok.tokens_per_item},
                                        _single_token(lm_tok, sep) if sep else None,
                                        _single_token(lm_tok, closer) if closer else None,
                                        opener.strip(), self._text_of)
        self.items = list(by_coords.values())
        outside = [t for span in self.spans for t in (span.codes, span.markers, torch.tensor([span.end], device="cpu"))]
        self.outside = torch.cat(outside) if outside else torch.zeros(0, dtype=torch.long, device="cpu")
        self._starts = {sp.start: k for k, sp in enumerate(self.spans)}
        self.automaton = _Automaton.shared(self, vocab, lm_tok)
        # the last call's input_ids and each row's state after them, on their device; and, for
        # the calls since the rows were last read whole, whether some row grew from no row of the
        # call before (host copies not yet read, each with the event that says it has arrived)
        self._prev: torch.Tensor | None = None
        self._state: torch.Tensor | None = None
        self._pending: list[tuple[torch.Tensor, torch.Event | None]] = []

    def _text_of(self, token: int) -> str:
        """An LM id's text (every id decoded once, the first time one is asked; "" past the LM's
        vocabulary, where a model's logits are padded)."""
        if self._texts is None:
            n = len(self._lm_tok)
            self._texts = self._lm_tok.batch_decode([[t] for t in range(n)], skip_special_tokens=False)
        return self._texts[token] if token < len(self._texts) else ""

    # --- the rules, once -------------------------------------------------------------------

    def _initial(self) -> _RowState:
        return _RowState(-1, 0, False, tuple((0, False, not items.opener) for items in self.items))

    def _advance(self, state: _RowState, token: int) -> _RowState:
        span, after, marked = state.span, state.after, state.marked
        opened = self._starts.get(token, -1)
        if opened >= 0:  # a start token (re)opens its span
            span, after, marked = opened, 0, False
        elif span >= 0 and token == self.spans[span].end:
            span, after, marked = -1, 0, False
        elif span >= 0:
            marked = marked or (after == 0 and token in self.spans[span].marker_set)
            after += 1
        return _RowState(span, after, marked, tuple(items.step(st, token) for items, st in zip(self.items, state.items)))

    def _allowed(self, state: _RowState) -> torch.Tensor | None:
        """LM ids allowed next, or None for free text."""
        if state.span >= 0:
            return self.spans[state.span].allowed(state.after, state.marked)
        for items, st in zip(self.items, state.items):
            allowed = items.allowed(st)
            if allowed is not None:
                return allowed
        return None

    def _masked(self, state: _RowState, width: int) -> torch.Tensor:
        """``(width,)`` bool: the LM ids forbidden next in ``state``."""
        allowed = self._allowed(state)
        if allowed is not None:
            masked = torch.ones(width, dtype=torch.bool, device="cpu")
            masked[allowed] = False
            return masked
        masked = torch.zeros(width, dtype=torch.bool, device="cpu")
        masked[self.outside] = True
        for items, st in zip(self.items, state.items):
            if not items.may_start(st):  # a coordinate starts an item only after its opener
                masked[items.coords] = True
            if items.tag and items.close is not None:  # a closing tag outside an item
                masked[items.close] = True
        return masked

    # --- decoding --------------------------------------------------------------------------

    def _states(self, input_ids: torch.LongTensor, tables: _DeviceTables) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B,)`` each row's automaton state on ``input_ids``' device, and a 0-d flag: some row
        grew from no row of the last call (None when the rows were read whole). A row that is one
        token longer than the last call's rows is advanced by that token from the row it grew from
        (``(B, B_prev)`` comparisons); a first call, other lengths or a lost row last time: each
        row is read whole on the host."""
        prev = self._prev
        if (prev is None or prev.shape[1] != input_ids.shape[1] - 1 or prev.device != input_ids.device
                or self._was_lost()):
            scanned = [self.automaton.scan(row) for row in input_ids.tolist()]
            return torch.tensor(scanned, dtype=torch.long, device=input_ids.device), None
        match = (input_ids[:, None, :-1] == prev[None]).all(-1)  # (B, B_prev): row b grew from row p
        parent = match.to(torch.uint8).argmax(1)
        token = input_ids[:, -1].clamp(0, len(self.automaton.token_class) - 1)
        return tables.next[self._state[parent], tables.token_class[token]], ~match.any(1).all()

    def _was_lost(self) -> bool:
        """Whether a row of an earlier call grew from no row of the call before, as far as the
        flags that have arrived on the host say (never waiting: under ``generate`` each step's
        flag has arrived by the next step; one still in flight is read at a later call)."""
        lost, waiting = False, []
        for flag, event in self._pending:
            if event is None or event.query():
                lost |= bool(flag)
            else:
                waiting.append((flag, event))
        self._pending = waiting
        return lost

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        tables = self.automaton.tables(scores.device, scores.shape[-1], self)
        states, lost = self._states(input_ids, tables)
        self._prev, self._state = input_ids.clone(), states
        if lost is None:  # every row read whole: nothing earlier matters
            self._pending = []
        else:
            flag = lost.to("cpu", non_blocking=True)
            event = None if lost.device.type == "cpu" else torch.Event(device=lost.device)  # CUDA, XPU, MPS…
            if event is not None:
                event.record()
            self._pending.append((flag, event))
        return scores.masked_fill(tables.mask[tables.row[states]], float("-inf"))


@dataclasses.dataclass(frozen=True)
class _DeviceTables:
    """An automaton's tables on one device, for logits of one width: ``next`` ``(S, C)`` (a state
    and a token class → the next state), ``token_class`` ``(n + 1,)``, ``row`` ``(S,)`` (a state
    → its row of ``mask``) and ``mask`` ``(M, width)`` bool, one row per distinct mask."""

    next: torch.Tensor
    token_class: torch.Tensor
    row: torch.Tensor
    mask: torch.Tensor


class _Automaton:
    """The processor's rules compiled for decoding: ``token_class`` (LM id → class; ids that no
    rule tells apart share one) and ``next[state][class]`` over the states reachable from the
    start, as lists for reading rows on the host and as ``_DeviceTables`` (with each state's mask)
    per device and logits width. A span's count of tokens stops mattering once it
    passes the span's length, so it is capped there and the states are finite."""

    _shared: dict[tuple[int, int], tuple[weakref.ref, weakref.ref, _Automaton]] = {}

    @classmethod
    def shared(cls, proc: PerceptionLogitsProcessor, vocab: PerceptionVocab, lm_tok) -> _Automaton:
        """The automaton of ``vocab`` and ``lm_tok``, compiled once while both live."""
        key = (id(vocab), id(lm_tok))
        hit = cls._shared.get(key)
        if hit is not None and hit[0]() is vocab and hit[1]() is lm_tok:
            return hit[2]
        made = cls(proc)
        cls._shared = {k: v for k, v in cls._shared.items() if v[0]() is not None and v[1]() is not None}
        cls._shared[key] = (weakref.ref(vocab), weakref.ref(lm_tok), made)
        return made

    def __init__(self, proc: PerceptionLogitsProcessor):
        n = len(proc._lm_tok)
        features = [self._features(proc, t) for t in range(n + 1)]  # id n: past the LM's vocabulary
        classes: dict[tuple, int] = {}
        self.token_class = [classes.setdefault(f, len(classes)) for f in features]
        first = {c: t for t, c in reversed(list(enumerate(self.token_class)))}  # a token of each class
        cap = lambda state: state if state.span < 0 else dataclasses.replace(  # noqa: E731
            state, after=min(state.after, proc.spans[state.span].length + 1))
        start = cap(proc._initial())
        index, states, self.next = {start: 0}, [start], []
        for state in states:  # breadth first; states grows as new ones are found
            row = []
            for c in range(len(classes)):
                nxt = cap(proc._advance(state, first[c]))
                if nxt not in index:
                    index[nxt] = len(states)
                    states.append(nxt)
                row.append(index[nxt])
            self.next.append(row)
        self.states = states
        self._tables: dict[tuple[torch.device, int], _DeviceTables] = {}

    @staticmethod
    def _features(proc: PerceptionLogitsProcessor, token: int) -> tuple:
        """What the rules can see of a token."""
        return (proc._starts.get(token, -1),
                tuple((token == sp.end, token in sp.marker_set) for sp in proc.spans),
                tuple((token in it.coord_set, token == it.between, token == it.close,
                       bool(it.opener) and proc._text_of(token).rstrip().endswith(it.opener)) for it in proc.items))

    def scan(self, tokens: list[int]) -> int:
        """The state after ``tokens``, read on the host."""
        state, last = 0, len(self.token_class) - 1
        for token in tokens:
            state = self.next[state][self.token_class[min(max(token, 0), last)]]
        return state

    def tables(self, device: torch.device, width: int, rules: PerceptionLogitsProcessor) -> _DeviceTables:
        """The tables on ``device`` for logits ``width`` wide, made on first use. ``rules``: a
        processor of this automaton's vocabulary, whose ``_masked`` builds the masks."""
        key = (device, width)
        if key not in self._tables:
            distinct: dict[bytes, int] = {}
            rows, masks = [], []
            for state in self.states:
                m = rules._masked(state, width)
                rows.append(distinct.setdefault(m.numpy().tobytes(), len(distinct)))
                if rows[-1] == len(masks):
                    masks.append(m)
            self._tables[key] = _DeviceTables(torch.tensor(self.next, dtype=torch.long, device=device),
                                              torch.tensor(self.token_class, dtype=torch.long, device=device),
                                              torch.tensor(rows, dtype=torch.long, device=device),
                                              torch.stack(masks).to(device))
        return self._tables[key]
