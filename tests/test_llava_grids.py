"""Depth maps on every grid through the plugin: the grid marker is a token of the LM, the
constraint allows it only first in a span, generation decodes each span on its own grid, and the
reconstruction loss reads each span on its grid (issue 13, item 3)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

import perceptok  # noqa: E402
from llava_fixtures import tiny_llama_with_vocab  # noqa: E402
from perceptok_llava.constrain import PerceptionLogitsProcessor  # noqa: E402
from perceptok_llava.generate import parse_perception  # noqa: E402
from perceptok_llava.losses import reconstruction_loss  # noqa: E402
from perceptok_llava.vocab import PerceptionVocab  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    return tiny_llama_with_vocab({"depth": perceptok.load("depth")})


def test_markers_are_lm_tokens_saved_with_the_vocabulary(setup, tmp_path):
    lm_tok, model, vocab = setup
    tok = vocab.tokenizers["depth"]
    assert lm_tok.convert_tokens_to_ids(tok.grid_markers) == vocab.markers["depth"]
    assert set(vocab.markers["depth"]) <= set(vocab.new_token_ids)
    vocab.save(tmp_path)
    again = PerceptionVocab.load(tmp_path)
    assert again.markers == vocab.markers
    again.validate(lm_tok, model)


@pytest.mark.parametrize("marker", [None, 0, 3])
def test_constrained_spans_on_every_grid(setup, marker):
    lm_tok, model, vocab = setup
    start = vocab.delimiters["depth"]["start"]
    prefix = [start] + ([vocab.markers["depth"][marker]] if marker is not None else [])
    ids = torch.tensor([lm_tok("depth", add_special_tokens=False)["input_ids"] + prefix] * 3)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=105, do_sample=True,
                         top_k=0, logits_processor=[PerceptionLogitsProcessor(vocab, lm_tok)],
                         pad_token_id=lm_tok.pad_token_id)
    tok = vocab.tokenizers["depth"]
    for row in out[:, ids.shape[1] - len(prefix):].tolist():
        text = lm_tok.decode(row, skip_special_tokens=False).replace(" ", "")
        span = text[: text.index("<DEPTH_END>") + len("<DEPTH_END>")]
        parsed = tok.parse(span)  # strict: a marker only first, then exactly 100 codes
        expected = tok.config.grids[marker + 1] if marker is not None else None
        assert expected is None or parsed.grids == [expected]
        assert not any(t in set(vocab.markers["depth"]) for t in row[len(prefix) + 1 :])
        after = parse_perception(text, vocab).depth[0]
        assert after.shape == tok.default_size(parsed.grids[0])


def test_reconstruction_loss_reads_each_span_on_its_grid(setup):
    lm_tok, _, vocab = setup
    tok = vocab.tokenizers["depth"]
    start, end = vocab.delimiters["depth"]["start"], vocab.delimiters["depth"]["end"]
    codes = torch.randint(0, tok.vocab_size, (100,), generator=torch.Generator().manual_seed(0))
    wide = [start, vocab.markers["depth"][0], *vocab.to_lm("depth", codes).tolist(), end]  # 5×20
    labels = torch.tensor([wide])
    logits = torch.randn(1, len(wide), len(lm_tok) + 200)
    loss = reconstruction_loss(logits, labels, vocab)
    code_ids = torch.tensor(vocab.lm_ids["depth"])
    probs = logits[0, 1:101][:, code_ids].softmax(-1)[None]  # position 1 (the marker) predicts code 1
    truth = tok.decode_soft(torch.nn.functional.one_hot(codes, tok.vocab_size).float()[None], (5, 20))
    expected = torch.nn.functional.mse_loss(tok.decode_soft(probs, (5, 20)), truth)
    assert torch.allclose(loss, expected)
    as_square = torch.nn.functional.mse_loss(tok.decode_soft(probs, (10, 10)), tok.decode_soft(
        torch.nn.functional.one_hot(codes, tok.vocab_size).float()[None], (10, 10)))
    assert not torch.allclose(loss, as_square)


def test_reconstruction_loss_over_a_batch_equals_span_by_span(setup):
    """Rows with several spans on different grids, a span cut off by the end of the row and one
    with a stray token: the batched loss is the MSE over exactly the whole spans, each decoded on
    its own grid, as if computed span by span."""
    lm_tok, _, vocab = setup
    tok = vocab.tokenizers["depth"]
    start, end = vocab.delimiters["depth"]["start"], vocab.delimiters["depth"]["end"]
    g = torch.Generator().manual_seed(1)

    def span(marker):
        codes = torch.randint(0, tok.vocab_size, (100,), generator=g)
        head = [start] + ([vocab.markers["depth"][marker]] if marker is not None else [])
        return head, codes, head + vocab.to_lm("depth", codes).tolist() + [end]

    text = lm_tok("depth", add_special_tokens=False)["input_ids"]
    rows, whole = [], []  # whole: (row, position of the first code, codes, grid)
    for layout in ([None, 3], [0], [2, None]):
        row = list(text)
        for marker in layout:
            head, codes, ids = span(marker)
            whole.append((len(rows), len(row) + len(head), codes, tok.config.grids[0 if marker is None else marker + 1]))
            row += ids + text
        rows.append(row)
    head, codes, ids = span(None)
    broken = ids[:50] + [text[0]] + ids[51:]  # a stray token among the codes: not a whole span
    rows[1] += broken + ids[:60]  # and a span cut off by the end of the row
    width = max(map(len, rows))
    labels = torch.tensor([r + [-100] * (width - len(r)) for r in rows])
    logits = torch.randn(len(rows), width, len(lm_tok) + 200, generator=g)
    code_ids = torch.tensor(vocab.lm_ids["depth"])
    errors, count = 0.0, 0
    for r, first, codes, grid in whole:
        pred = tok.decode_soft(logits[r, first - 1 : first + 99][:, code_ids].softmax(-1)[None], grid)
        truth = tok.decode_soft(torch.nn.functional.one_hot(codes, tok.vocab_size).float()[None], grid)
        errors += float(((pred - truth) ** 2).sum())
        count += pred.numel()
    assert len({w[3] for w in whole}) == 4 and len(whole) == 5
    assert torch.allclose(reconstruction_loss(logits, labels, vocab), torch.tensor(errors / count), rtol=1e-5)
    assert float(reconstruction_loss(logits, torch.full_like(labels, -100), vocab)) == 0.0
