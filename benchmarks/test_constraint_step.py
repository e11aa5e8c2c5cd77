"""Per-step cost of ``PerceptionLogitsProcessor`` at batch 8 and 1 over a 700-token prompt,
inside a depth span, on logits as wide as LLaVA-1.5's (32,064): the processor that follows each
row's state token by token, beside a fresh processor at every step, which reads every sequence
whole (the rescan that following rows saves; baseline). Both step through the compiled automaton.

Run: ``.venv/bin/python -m pytest benchmarks/test_constraint_step.py --benchmark-columns=mean,stddev,rounds``
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from llava_fixtures import tiny_llama, tiny_lm_tokenizer  # noqa: E402
from perceptok import BoxTokenizer, load  # noqa: E402
from perceptok_llava.constrain import PerceptionLogitsProcessor  # noqa: E402
from perceptok_llava.vocab import add_perception_tokens  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    lm_tok = tiny_lm_tokenizer()
    vocab = add_perception_tokens(tiny_llama(len(lm_tok)), lm_tok, {"depth": load("depth"),
                                                                    "boxes": BoxTokenizer.from_preset("aurora")})
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(5, 200, (8, 700), generator=g)
    prompt[:, -1] = vocab.delimiters["depth"]["start"]
    codes = torch.tensor(vocab.lm_ids["depth"])[torch.randint(128, (8, 50), generator=g)]
    return lm_tok, vocab, prompt, codes


@pytest.mark.parametrize("batch", [8, 1])
@pytest.mark.parametrize("incremental", [True, False])
def test_constraint_step_prompt700(benchmark, setup, incremental, batch):
    lm_tok, vocab, prompt, codes = setup
    prompt, codes = prompt[:batch], codes[:batch]
    scores = torch.zeros(batch, 32064)  # llava-1.5-7b-hf's logits

    def run():  # 50 decoding steps into a depth span
        proc = PerceptionLogitsProcessor(vocab, lm_tok)
        for step in range(50):
            ids = torch.cat([prompt, codes[:, :step]], dim=1)
            (proc if incremental else PerceptionLogitsProcessor(vocab, lm_tok))(ids, scores)

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    benchmark.extra_info["ms_per_step"] = benchmark.stats["mean"] / 50 * 1000
