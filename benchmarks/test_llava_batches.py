"""What a LLaVA training step costs besides the model, at LLaVA-1.5 shapes (336 px images, 575
image tokens, logits 32,064 wide), each beside its baseline in the same run:

- ``collate`` of 16 records of 640×480 photos: the images processed once and the prompts
  tokenised as text (shipped), beside the processor called a second time on the prompts with
  their images (what collate did before);
- ``reconstruction_loss`` forward and backward over a batch of 16 rows of 800 tokens, each with a
  100-code depth span: every span found and gathered at once (shipped), beside a loop over the
  spans, each read on the host.

Run: ``.venv/bin/python -m pytest benchmarks/test_llava_batches.py --benchmark-columns=mean,stddev,rounds``
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from llava_fixtures import tiny_llama_with_vocab, tiny_lm_tokenizer  # noqa: E402
from perceptok import BoxTokenizer, PointTokenizer, load  # noqa: E402
from perceptok_llava.data import build_records  # noqa: E402
from perceptok_llava.sources import synthetic_samples  # noqa: E402
from perceptok_llava.batches import chat, collate  # noqa: E402
from perceptok_llava.losses import reconstruction_loss  # noqa: E402


@pytest.fixture(scope="module")
def records_and_processor():
    from transformers import CLIPImageProcessor, LlavaProcessor

    processor = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 336},
                                                                  crop_size={"height": 336, "width": 336}),
                               tokenizer=tiny_lm_tokenizer(vocab_size=2000), patch_size=14,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1)
    records = build_records(synthetic_samples(8, size=(480, 640)), load("depth"), BoxTokenizer.from_preset("aurora"),
                            PointTokenizer.from_preset("aurora"), seed=0)
    return records[:16], processor


@pytest.mark.parametrize("prompts_again", [False, True], ids=["shipped", "processor_twice"])
def test_collate_batch16_336px(benchmark, records_and_processor, prompts_again):
    records, processor = records_and_processor

    def run():
        batch = collate(records, processor)
        if prompts_again:
            processor(text=[chat(r["prompt"]) for r in records], images=[r["image"].load() for r in records],
                      return_tensors="pt", padding=True)
        return batch

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)


def _span_by_span(logits, labels, vocab):
    tok = vocab.tokenizers["depth"]
    code_ids = torch.tensor(vocab.lm_ids["depth"])
    errors, count = logits.new_zeros(()), 0
    for row in range(labels.shape[0]):
        for pos in (labels[row] == vocab.delimiters["depth"]["start"]).nonzero().flatten().tolist():
            span = labels[row, pos + 1 : pos + 101]
            if len(span) < 100 or not torch.isin(span, code_ids).all():
                continue
            pred = tok.decode_soft(logits[row, pos : pos + 100][:, code_ids].softmax(-1)[None], (10, 10))
            with torch.no_grad():
                truth = tok.decode_soft(F.one_hot(vocab.from_lm("depth", span), tok.vocab_size).float()[None], (10, 10))
            errors = errors + F.mse_loss(pred, truth, reduction="sum")
            count += pred.numel()
    return errors / count


@pytest.mark.parametrize("batched", [True, False], ids=["shipped", "span_by_span"])
def test_reconstruction_loss_batch16_800_tokens(benchmark, batched):
    lm_tok, _, vocab = tiny_llama_with_vocab({"depth": load("depth")})
    start, end = vocab.delimiters["depth"]["start"], vocab.delimiters["depth"]["end"]
    g = torch.Generator().manual_seed(0)
    labels = torch.full((16, 800), -100)
    for row in range(16):
        codes = torch.randint(0, vocab.tokenizers["depth"].vocab_size, (100,), generator=g)
        labels[row, 600:702] = torch.tensor([start, *vocab.to_lm("depth", codes).tolist(), end])
    logits = torch.randn(16, 800, 32064, generator=g, requires_grad=True)
    loss_fn = reconstruction_loss if batched else _span_by_span
    assert torch.allclose(reconstruction_loss(logits, labels, vocab), _span_by_span(logits, labels, vocab))

    def run():
        loss_fn(logits, labels, vocab).backward()
        logits.grad = None

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
