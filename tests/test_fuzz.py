"""Fuzzing every tokenizer (issue 10): generated text and arrays, only the documented errors.

Properties, for every box and point convention and both depth tokenizers:

- strict parsing of any text gives ids or a ``TokenParseError``, nothing else;
- lenient parsing gives ids (or, for depth text without a single code, a ``TokenParseError``),
  and what it gives re-renders to text that strict parsing reads back to the same ids;
- encoding malformed arrays (NaN, ±inf, wrong shapes and dtypes, empty, 1×N, huge or tiny
  values) raises ``ValueError`` or ``TypeError`` or gives in-range ids and finite statistics.

CI runs a bounded number of examples per property; ``PERCEPTOK_FUZZ_EXAMPLES=10000`` runs the
full count.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import perceptok
from perceptok import BoxTokenizer, PointTokenizer, TokenParseError
from perceptok.coordinates import presets_for

EXAMPLES = int(os.environ.get("PERCEPTOK_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

COORDINATE = [(BoxTokenizer, p) for p in presets_for("box")] + [(PointTokenizer, p) for p in presets_for("point")]
_CACHE: dict[str, object] = {}


def tokenizer(name: str):
    """One tokenizer per name for the whole module (building a table renderer is not free)."""
    if name not in _CACHE:
        if name.startswith("depth"):
            _CACHE[name] = perceptok.load(name)
        else:
            cls, preset = name.split(":")
            _CACHE[name] = (BoxTokenizer if cls == "box" else PointTokenizer).from_preset(preset)
    return _CACHE[name]


def _fragments(tok) -> list[str]:
    """Pieces that text in this convention is made of, and some that it is not."""
    sample = tok.to_text(tok.encode([[0.1, 0.2, 0.6, 0.7]] if tok.item_kind == "box" else [[0.3, 0.4]],
                                    canvas_size=(100, 100), labels=["cat"]))
    pieces = [sample, sample[: len(sample) // 2], tok.vocab[0], tok.vocab[-1], "cat", " ", "\n", ",", ";", "(",
              ")", "[", "]", "{", "}", '"', "<", ">", "0", "99999", "-1", "1.5", "\x00", "é", "label"]
    return pieces + list(dict.fromkeys(tok.grammar.literals))


def text_for(tok):
    pieces = _fragments(tok)
    return st.lists(st.one_of(st.sampled_from(pieces), st.text(max_size=6)), max_size=12).map("".join)


@pytest.mark.parametrize("cls,preset", COORDINATE, ids=[f"{c.item_kind}-{p}" for c, p in COORDINATE])
@FUZZ
@given(data=st.data())
def test_coordinate_text_gives_ids_or_the_documented_error(cls, preset, data):
    tok = tokenizer(f"{cls.item_kind}:{preset}")
    text = data.draw(text_for(tok))
    try:
        strict = tok.parse(text)
    except TokenParseError:
        strict = None
    lenient = tok.parse(text, strict=False)
    for parsed in (strict, lenient):
        if parsed is None:
            continue
        assert parsed.ids.dtype == torch.long and parsed.ids.ndim == 2
        assert parsed.ids.numel() == 0 or (0 <= int(parsed.ids.min()) and int(parsed.ids.max()) < tok.vocab_size)
    again = tok.parse(tok.to_text(lenient))  # lenient results re-render to strictly valid text
    assert torch.equal(again.ids, lenient.ids)
    assert (again.labels or [None] * len(again.ids)) == (lenient.labels or [None] * len(lenient.ids))
    if strict is not None:
        assert torch.equal(tok.parse([text, text]).ids[0][: len(strict.ids)], strict.ids)


@pytest.mark.parametrize("name", ["depth", "depth:pooled"])
@FUZZ
@given(data=st.data())
def test_depth_text_gives_ids_or_the_documented_error(name, data):
    tok = tokenizer(name)
    pieces = [tok.start_token, tok.end_token, "<DEPTH_0>", "<DEPTH_127>", "<DEPTH_128>", "<DEPTH_GRID_5x20>",
              "<DEPTH_GRID_9x9>", "<DEPTH_", " ", "\n", "x", *tok.vocab[:3]]
    text = data.draw(st.lists(st.one_of(st.sampled_from(pieces), st.text(max_size=4)), max_size=40).map("".join))
    for strict in (True, False):
        try:
            parsed = tok.parse(text, strict=strict)
        except TokenParseError:
            continue
        assert parsed.ids.shape == (tok.tokens_per_map,) and 0 <= int(parsed.ids.min()) and int(parsed.ids.max()) < 128
        back = tok.parse(tok.to_text(parsed.ids, grids=parsed.grids[0]))
        assert torch.equal(back.ids, parsed.ids) and back.grids == parsed.grids


def _arrays():
    """Malformed and extreme inputs of every shape and dtype."""
    values = st.sampled_from([0.0, -1.0, 1e-45, 1e-30, 1e30, 1e300, float("nan"), float("inf"), -float("inf"), 0.5, 3.0])
    shapes = st.sampled_from([(0,), (0, 4), (1, 4), (3, 4), (2, 2), (1, 7), (4,), (2, 3, 4), (5, 1), (1, 1)])
    dtypes = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.uint8, np.bool_])
    return st.tuples(shapes, dtypes, st.lists(values, min_size=1, max_size=8))


def _fill(shape, dtype, values) -> np.ndarray:
    n = int(np.prod(shape))
    with np.errstate(all="ignore"):
        return np.resize(np.array(values, dtype=np.float64), n).astype(dtype).reshape(shape)


@pytest.mark.parametrize("cls,preset", COORDINATE, ids=[f"{c.item_kind}-{p}" for c, p in COORDINATE])
@FUZZ
@given(spec=_arrays(), canvas=st.sampled_from([None, (100, 200), (0, 5), (3, 1), (float("nan"), 4)]),
       clip=st.booleans())
def test_coordinate_encode_of_any_array(cls, preset, spec, canvas, clip):
    tok = tokenizer(f"{cls.item_kind}:{preset}")
    x = _fill(*spec)
    try:
        enc = tok.encode(x, canvas_size=canvas, clip=clip)
    except (ValueError, TypeError):
        return
    assert enc.ids.dtype == torch.long
    real = enc.ids[enc.ids >= 0]
    assert real.numel() == enc.ids.numel() and (real.numel() == 0 or int(real.max()) < tok.vocab_size)
    if canvas is not None or tok.config.quantization != "pixel":
        decoded = tok.decode(enc.ids, canvas_size=canvas)
        assert all(torch.isfinite(d).all() for d in (decoded if isinstance(decoded, list) else [decoded]))


@pytest.mark.parametrize("name", ["depth", "depth:pooled"])
@settings(max_examples=max(EXAMPLES // 3, 20), deadline=None, suppress_health_check=list(HealthCheck))
@given(shape=st.sampled_from([(0, 0), (1, 1), (1, 9), (9, 1), (2, 3), (24, 32), (3, 24, 32), (5,), (2, 2, 2, 2)]),
       dtype=st.sampled_from([np.float64, np.float32, np.float16, np.int32, np.uint16, np.bool_]),
       values=st.lists(st.sampled_from([0.0, 1e-45, 1e-30, 0.5, 2.0, 1e30, float("nan"), float("inf"), -3.0]),
                       min_size=1, max_size=6),
       kind=st.sampled_from(["metric", "disparity", "relative_inverse"]))
def test_depth_encode_of_any_array(name, shape, dtype, values, kind):
    tok = tokenizer(name)
    x = _fill(shape, dtype, values)
    try:
        enc = tok.encode(x, kind=kind)
    except (ValueError, TypeError):
        return
    ids = enc.ids
    assert ids.dtype == torch.long and 0 <= int(ids.min()) and int(ids.max()) < 128
    assert torch.isfinite(enc.stats.low).all() and torch.isfinite(enc.stats.high).all()
    assert torch.isfinite(tok.decode(enc.ids, stats=enc.stats)).all()
