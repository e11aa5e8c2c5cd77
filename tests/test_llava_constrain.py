"""Constrained generation keeps perception spans well formed: greedy, sampling and beam search,
batched, on a tiny random Llama (whose unconstrained output would be noise)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from llava_fixtures import tiny_llama_with_vocab  # noqa: E402
from perceptok import BoxTokenizer, PooledDepthTokenizer  # noqa: E402
from perceptok_llava.constrain import PerceptionLogitsProcessor  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    return tiny_llama_with_vocab({"depth": PooledDepthTokenizer(), "boxes": BoxTokenizer.from_preset("aurora")})


def generate(setup, prompt_suffix_ids, **kwargs):
    lm_tok, model, vocab = setup
    lm_tok.padding_side = "left"
    prompt = lm_tok(["how many boxes", "depth"], return_tensors="pt", padding=True)
    ids = torch.cat([prompt["input_ids"], torch.tensor([prompt_suffix_ids] * 2, dtype=torch.long).view(2, -1)], dim=1)
    mask = torch.cat([prompt["attention_mask"], torch.ones(2, len(prompt_suffix_ids), dtype=torch.long)], dim=1)
    proc = PerceptionLogitsProcessor(vocab, lm_tok)
    out = model.generate(input_ids=ids, attention_mask=mask, logits_processor=[proc], max_new_tokens=104,
                         pad_token_id=lm_tok.pad_token_id, **kwargs)
    return out[:, ids.shape[1]:]


@pytest.mark.parametrize("mode", [dict(do_sample=False), dict(do_sample=True, top_k=0), dict(num_beams=3, do_sample=False)])
def test_depth_span_has_exactly_100_codes(setup, mode):
    lm_tok, _, vocab = setup
    start, end = vocab.delimiters["depth"]["start"], vocab.delimiters["depth"]["end"]
    out = generate(setup, [start], **mode)
    codes = set(vocab.lm_ids["depth"])
    for row in out.tolist():
        assert all(t in codes for t in row[:100]) and row[100] == end
        assert not any(t in codes or t == end for t in row[101:])  # no codes outside a span
        text = lm_tok.decode([start] + row[:101])
        assert vocab.tokenizers["depth"].from_text(text.replace(" ", "")).shape == (100,)


def test_boxes_follow_their_grammar(setup):
    lm_tok, _, vocab = setup
    first = vocab.lm_ids["boxes"][10]
    out = generate(setup, [first], do_sample=True, top_k=0)
    comma = lm_tok(",", add_special_tokens=False)["input_ids"][0]
    close = lm_tok(")", add_special_tokens=False)["input_ids"][0]
    coords = set(vocab.lm_ids["boxes"])
    for row in out.tolist():
        assert row[0] == comma and row[1] in coords and row[2] == comma and row[3] in coords
        assert row[4] == comma and row[5] in coords and row[6] == close


def test_free_text_never_gets_stray_depth_codes(setup):
    _, _, vocab = setup
    out = generate(setup, [], do_sample=True, top_k=0)
    codes = set(vocab.lm_ids["depth"]) | {vocab.delimiters["depth"]["end"]}
    start = vocab.delimiters["depth"]["start"]
    for row in out.tolist():
        if start not in row:
            assert not any(t in codes for t in row)


def _by_the_rules(proc, ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """What the grammar's rules themselves mask (``_advance`` over each whole row, then
    ``_masked``), with no compiled automaton."""
    masks = []
    for row in ids.tolist():
        state = proc._initial()
        for token in row:
            state = proc._advance(state, token)
        masks.append(proc._masked(state, scores.shape[-1]))
    return scores.masked_fill(torch.stack(masks), float("-inf"))


def test_incremental_state_matches_a_full_rescan_under_beam_reordering(setup):
    """The processor advances each row's state by its new token only, following rows that beam
    search reorders, through the compiled automaton; it must mask exactly as the rules do when
    they read every sequence whole."""
    lm_tok, _, vocab = setup
    g = torch.Generator().manual_seed(0)
    special = vocab.lm_ids["depth"][:5] + vocab.lm_ids["boxes"][:5] + [vocab.delimiters["depth"]["start"],
                                                                       vocab.delimiters["depth"]["end"]]
    special += lm_tok([",", ")"], add_special_tokens=False)["input_ids"][0] + lm_tok(")", add_special_tokens=False)["input_ids"]
    pool = torch.tensor(special + list(range(5, 40)))
    ids = pool[torch.randint(len(pool), (4, 30), generator=g)]
    proc = PerceptionLogitsProcessor(vocab, lm_tok)
    scores = torch.zeros(4, len(lm_tok) + 200)
    for step in range(40):
        got = proc(ids, scores)
        assert torch.equal(got, _by_the_rules(proc, ids, scores)), step
        assert torch.equal(got, PerceptionLogitsProcessor(vocab, lm_tok)(ids, scores)), step  # a fresh one agrees
        parents = torch.randint(4, (4,), generator=g)  # beams: rows continue from any row
        choices = torch.nonzero(got[torch.arange(4)] > float("-inf"))
        nxt = torch.stack([choices[choices[:, 0] == r][torch.randint(int((choices[:, 0] == r).sum()), (1,), generator=g), 1]
                           for r in range(4)]).view(4)
        ids = torch.cat([ids[parents], nxt[parents, None]], dim=1)


@pytest.mark.parametrize("mode", [dict(do_sample=False), dict(do_sample=True, top_k=0), dict(num_beams=3, do_sample=False)])
def test_under_generate_every_row_grows_from_a_row_of_the_last_call(setup, mode, monkeypatch):
    """The device-side stepping relies on it: under greedy, sampling and beam search, every row
    that ``generate`` hands the processor continues a row of its last call, so none is flagged
    and no row is read whole again after the first call's prompt."""
    from perceptok_llava.constrain import _Automaton

    scans = []
    real = _Automaton.scan
    monkeypatch.setattr(_Automaton, "scan", lambda self, tokens: scans.append(len(tokens)) or real(self, tokens))
    out = generate(setup, [setup[2].delimiters["depth"]["start"]], **mode)
    beams = mode.get("num_beams", 1)
    assert out.shape[1] > 100 and len(scans) == 2 * beams  # the first call's rows, then none
    assert len(set(scans)) == 1  # all of them the prompt


def test_a_step_reads_nothing_back_from_the_device(setup, monkeypatch):
    """After the first call, a step neither reads a row whole nor copies tokens or states to the
    host (``tolist``, ``item``), whichever rows beam search continues: on a GPU, such a read would
    wait for the model's forward pass."""
    import sys

    from perceptok_llava.constrain import _Automaton

    lm_tok, _, vocab = setup
    proc = PerceptionLogitsProcessor(vocab, lm_tok)
    scores = torch.zeros(4, len(lm_tok))
    ids = torch.tensor([[5, 6, vocab.delimiters["depth"]["start"]], [5, 6, 7], [5, 8, 9], [5, 6, 7]])
    proc(ids, scores)
    reads = []
    for name in ("tolist", "item"):
        real = getattr(torch.Tensor, name)

        def spy(self, *args, _real=real, _name=name):
            if sys._getframe(1).f_code.co_filename.endswith("constrain.py"):
                reads.append(_name)
            return _real(self, *args)

        monkeypatch.setattr(torch.Tensor, name, spy)
    monkeypatch.setattr(_Automaton, "scan", lambda *a: reads.append("scan"))
    codes = torch.tensor(vocab.lm_ids["depth"][:10])
    for step in range(10):
        ids = torch.cat([ids[torch.tensor([1, 0, 0, 3])], codes[step].expand(4, 1)], 1)
        got = proc(ids, scores)
    monkeypatch.undo()
    assert reads == [] and torch.equal(got, _by_the_rules(proc, ids, scores))


def test_a_row_that_grew_from_no_row_is_read_whole_at_the_next_call(setup):
    """Outside ``generate``, rows may not continue the last call's: such a row is flagged (without
    waiting for the device) and every row is read whole at the next call, which then masks by
    the rules again."""
    lm_tok, _, vocab = setup
    start = vocab.delimiters["depth"]["start"]
    code = vocab.lm_ids["depth"][0]
    proc = PerceptionLogitsProcessor(vocab, lm_tok)
    scores = torch.zeros(2, len(lm_tok))
    proc(torch.tensor([[5, start], [5, 6]]), scores)
    proc(torch.tensor([[7, 8, 9], [5, 6, 7]]), scores)  # row 0 grew from no row
    ids = torch.tensor([[7, 8, 9, start], [5, 6, 7, 8]])
    assert torch.equal(proc(ids, scores), _by_the_rules(proc, ids, scores))
    ids = torch.cat([ids, torch.tensor([[code], [9]])], 1)
    assert torch.equal(proc(ids, scores), _by_the_rules(proc, ids, scores))  # and follows the rows again


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: host syncs only exist there")
def test_a_decoding_step_never_syncs_with_the_gpu(setup):
    """After the first call, a step issues no synchronising CUDA call (torch's sync debug mode
    raises on any), and masks as the rules do."""
    lm_tok, _, vocab = setup
    proc = PerceptionLogitsProcessor(vocab, lm_tok)
    ids = torch.tensor([[5, 6, vocab.delimiters["depth"]["start"]]] * 4, device="cuda")
    scores = torch.zeros(4, len(lm_tok), device="cuda")
    proc(ids, scores)
    codes = torch.tensor(vocab.lm_ids["depth"][:20], device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(20):
            ids = torch.cat([ids[torch.tensor([1, 0, 3, 2], device="cuda")], codes[step].expand(4, 1)], 1)
            got = proc(ids, scores)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(got.cpu(), _by_the_rules(proc, ids.cpu(), scores.cpu()))


def test_the_automaton_is_the_rules_on_long_spans_and_grid_markers():
    """Spans longer than the tokenizer's length (in a prompt, nothing stops them), grid markers,
    ids past the LM's vocabulary (padded logits) and a vocabulary of every kind: the compiled
    automaton masks as the rules do, and processors of one vocabulary share one automaton."""
    from perceptok import PointTokenizer, load

    lm_tok, _, vocab = tiny_llama_with_vocab({"depth": load("depth"), "boxes": BoxTokenizer.from_preset("aurora"),
                                             "points": PointTokenizer.from_preset("aurora"),
                                             "kosmos": BoxTokenizer.from_preset("kosmos2")})
    proc = PerceptionLogitsProcessor(vocab, lm_tok)
    assert PerceptionLogitsProcessor(vocab, lm_tok).automaton is proc.automaton
    start, end = vocab.delimiters["depth"]["start"], vocab.delimiters["depth"]["end"]
    codes, marker = vocab.lm_ids["depth"], vocab.markers["depth"][0]
    width = len(lm_tok) + 64
    g = torch.Generator().manual_seed(1)
    pool = torch.tensor(codes[:8] + vocab.lm_ids["boxes"][:4] + vocab.lm_ids["kosmos"][:4] + [start, end, marker]
                        + lm_tok([",", ")", "("], add_special_tokens=False)["input_ids"][0] + list(range(5, 30))
                        + [width - 1])
    rows = [[start] + codes[:1] * n for n in (0, 99, 100, 101, 150)] + [[start, marker] + codes[:1] * n for n in (0, 99, 100)]
    rows += [pool[torch.randint(len(pool), (160,), generator=g)].tolist() for _ in range(24)]
    for row in rows:
        ids = torch.tensor([row])
        scores = torch.randn(1, width, generator=g)
        assert torch.equal(PerceptionLogitsProcessor(vocab, lm_tok)(ids, scores), _by_the_rules(proc, ids, scores)), row[:4]
    over = PerceptionLogitsProcessor(vocab, lm_tok)(torch.tensor([[start] + codes[:1] * 150]), torch.zeros(1, width))
    assert torch.nonzero(over[0] > float("-inf")).flatten().tolist() == [end]  # past the length: only the end


def _sample_hot(tokenizers: dict, favour, seed: int, max_new_tokens: int) -> tuple[list[str], object]:
    """16 answers sampled at temperature 2 from a tiny random LM with the constraint on, behind a
    processor that pushes hard towards ``favour(lm_tok, vocab)`` (coordinates and punctuation
    everywhere); returns the texts (spaces removed) and the LM tokenizer."""
    lm_tok, model, vocab = tiny_llama_with_vocab(tokenizers, seed)
    favoured = torch.tensor(favour(lm_tok, vocab))

    def chaos(input_ids, scores):
        scores[:, favoured] += 4.0
        return scores

    prompt = lm_tok(["how many boxes"] * 16, return_tensors="pt")
    out = model.generate(**prompt, do_sample=True, temperature=2.0, top_k=0, max_new_tokens=max_new_tokens,
                         logits_processor=[chaos, PerceptionLogitsProcessor(vocab, lm_tok)],
                         pad_token_id=lm_tok.pad_token_id)
    rows = out[:, prompt["input_ids"].shape[1]:].tolist()
    return [lm_tok.decode(row, skip_special_tokens=False).replace(" ", "") for row in rows], lm_tok


def _check_items(texts: list[str], item: str, close: str, coordinate: str, parse) -> int:
    """Every finished item (regex ``item``, ending in ``close``) parses strictly with
    ``parse(text, coordinates)``; only a text's last item may be unfinished; no coordinate is
    outside an item. Returns the number of finished items."""
    import re

    finished = 0
    for text in texts:
        items = list(re.finditer(item, text))
        for m in items:
            if not m.group(0).endswith(close):
                assert m.end() == len(text)  # only the last item may be unfinished
                continue
            parse(m.group(0), m.group(0).count(coordinate))  # strict: raises on any malformed item
            finished += 1
        assert sum(m.group(0).count(coordinate) for m in items) == text.count(coordinate)  # none outside
    return finished


def test_high_temperature_sampling_writes_only_strictly_parsable_items():
    """Issue 13 (4): sampled hot with the constraint on, items started without ``(`` and ``,)``
    closings appeared (boxes and points share the <PIXEL_k> tokens). A biased, hot sampler that
    keeps trying to write coordinates and punctuation anywhere must still produce only items
    that the strict parsers read, and no coordinate outside an item."""
    from perceptok import PointTokenizer

    boxes, points = BoxTokenizer.from_preset("aurora"), PointTokenizer.from_preset("aurora")

    def favour(lm_tok, vocab):
        return [lm_tok(c, add_special_tokens=False)["input_ids"][0] for c in "(),"] + vocab.lm_ids["boxes"]

    texts, _ = _sample_hot({"boxes": boxes, "points": points}, favour, seed=0, max_new_tokens=120)
    finished = _check_items(texts, r"\((?:<PIXEL_\d+>[,)]?)+", ")", "<PIXEL_",
                            lambda text, n: (boxes if n == 4 else points).parse(text))
    assert finished >= 16  # the sampler did try hard


def test_kosmos2_items_keep_their_object_tags_when_sampled_hot():
    """Issue 13 (4): ``<object>``/``</object>`` were not LM tokens, so Kosmos-2 items were never
    closed by the constraint. They are now added as tokens and enforced like any layout's."""
    kosmos = BoxTokenizer.from_preset("kosmos2")

    def favour(lm_tok, vocab):
        tags = lm_tok.convert_tokens_to_ids(["<object>", "</object>"])
        assert lm_tok.convert_ids_to_tokens(tags) == ["<object>", "</object>"]  # single tokens of the LM
        return tags + vocab.lm_ids["boxes"]

    texts, _ = _sample_hot({"boxes": kosmos}, favour, seed=1, max_new_tokens=60)
    finished = _check_items(texts, r"<object>(?:<patch_index_\d+>)*(?:</object>)?", "</object>", "<patch_index_",
                            lambda text, n: kosmos.parse(text))
    assert finished >= 16


def test_rules_are_host_tables_whatever_the_default_device():
    """The rules' tables are CPU tensors whatever torch's default device is (a script that sets
    ``torch.set_default_device("cuda")`` must still be constrained; ``meta`` stands in for it): a
    processor made and run under it masks CPU logits by the rules: after ``<DEPTH_START>`` only
    codes and grid markers, in free text no code."""
    lm_tok, _, vocab = tiny_llama_with_vocab({"depth": PooledDepthTokenizer(), "boxes": BoxTokenizer.from_preset("aurora")},
                                             seed=1)  # its own vocabulary: the automaton is built here
    start = vocab.delimiters["depth"]["start"]
    ids = torch.tensor([[5, 6, start], [5, 6, 7]])
    with torch.device("meta"):
        out = PerceptionLogitsProcessor(vocab, lm_tok)(ids, torch.zeros(2, len(lm_tok), device="cpu"))
    assert out.device.type == "cpu"
    allowed = set(torch.isfinite(out[0]).nonzero()[:, 0].tolist())
    assert allowed == set(vocab.lm_ids["depth"]) | set(vocab.markers.get("depth", []))
    assert not torch.isfinite(out[1, vocab.lm_ids["depth"]]).any() and torch.isfinite(out[1]).sum() > 100

