"""How much of a LLaVA training batch is padding, by batch layout, ``group_by_length`` and packing
(two or four records a row): the curriculum of ``perceptok-llava train`` (linear schedule, 10 stages of
2,000 records, the CLI's defaults) over records built from synthetic scenes, each record's length
its text in tokens (the perception tokens added to a tokenizer trained here, so a depth map is 102
tokens, as in LLaMA's) plus LLaVA-1.5's 575 image tokens. Padding costs a GPU what real tokens cost, so ``1 - padding``
bounds the tokens/s a layout can reach. Also the share of token positions at which training
computes logits (``keep_answer_logits``: from the batch's earliest answer on; before, every one).

``--train`` also trains the end-to-end test's tiny LLaVA (48 steps of 4, one process) with each
grouping and prints the mean loss over every record afterwards: what sorting does to learning.

Run: ``.venv/bin/python benchmarks/llava_padding.py [--train]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from llava_fixtures import tiny_lm_tokenizer  # noqa: E402
from perceptok import BoxTokenizer, PointTokenizer, load  # noqa: E402
from perceptok_llava.curriculum import CurriculumSampler  # noqa: E402
from perceptok_llava.data import ATOMIC_TASKS, build_records  # noqa: E402
from perceptok_llava.sources import synthetic_samples  # noqa: E402
from perceptok_llava.batches import chat, pack_rows, token_lengths  # noqa: E402
from perceptok_llava.vocab import add_perception_tokens  # noqa: E402

IMAGE_TOKENS = 575  # llava-1.5 at 336 px: 24 × 24 patches, the class token dropped
LAYOUTS = ((1, 16, 1), (1, 4, 4), (8, 4, 1), (8, 16, 1))  # (GPUs, micro-batch, accumulation)


def record_lengths(samples: int = 300) -> tuple[list[str], list[int], list[int]]:
    """Every record's task, its length in tokens and its prompt's (both with the image's)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizers = {"depth": load("depth"), "boxes": BoxTokenizer.from_preset("aurora"),
                  "points": PointTokenizer.from_preset("aurora")}
    lm_tok = tiny_lm_tokenizer(vocab_size=2000)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(lm_tok), hidden_size=16, intermediate_size=32,
                                      num_hidden_layers=1, num_attention_heads=2))
    add_perception_tokens(lm, lm_tok, tokenizers)
    records = build_records(synthetic_samples(samples, size=(240, 320)), tokenizers["depth"], tokenizers["boxes"],
                            tokenizers["points"], seed=0)
    prompts = [len(ids) + IMAGE_TOKENS for ids in lm_tok([chat(r["prompt"]) for r in records])["input_ids"]]
    return [r["task"] for r in records], [n + IMAGE_TOKENS for n in token_lengths(records, lm_tok)], prompts


def padding(tasks: list[str], lengths: list[int], prompts: list[int], world: int, batch: int, accum: int,
            grouping: str, per_row: int = 1) -> tuple[float, float]:
    """The padding share of every micro-batch of every rank over the whole curriculum, with
    ``per_row`` records packed in a row, and the share of token slots given logits."""
    real = slots = logits = 0
    for rank in range(world):
        sampler = CurriculumSampler(tasks, ATOMIC_TASKS, 2000, stages=10, seed=0, rank=rank, world_size=world,
                                    batch_size=batch, lengths=None if grouping == "off" else lengths,
                                    group_size=world * batch * accum if grouping == "step" else None)
        order = list(sampler)
        for k in range(0, len(order), batch):
            records = [lengths[i] for i in order[k : k + batch]]
            dealt = pack_rows(records, per_row)
            rows = [sum(records[i] for i in row) for row in dealt]
            first_answer = min(prompts[order[k + row[0]]] for row in dealt)  # each row's first record's
            real, slots = real + sum(rows), slots + max(rows) * len(rows)
            logits += (max(rows) - first_answer + 1) * len(rows)
    return 1 - real / slots, logits / slots


def trained_loss(grouping: str) -> dict:
    """The tiny LLaVA of tests/test_llava_end_to_end.py trained with ``grouping``: its padding
    share and its mean loss over every record afterwards."""
    import torch
    from test_llava_end_to_end import tiny_processor, tokenizers

    from llava_fixtures import tiny_llava
    from perceptok_llava.batches import collate
    from perceptok_llava.train import LlavaTrainConfig, train_llava

    lm_tok = tiny_lm_tokenizer()
    torch.manual_seed(0)
    model = tiny_llava(len(lm_tok) + 20, lm_tok.convert_tokens_to_ids("<image>"))
    processor = tiny_processor(lm_tok)
    records = build_records(synthetic_samples(10, size=(64, 80)), **tokenizers(), seed=0)
    with tempfile.TemporaryDirectory() as out:
        cfg = LlavaTrainConfig(out=out, lora_r=8, lora_alpha=16, lr=3e-3, projector_lr=3e-4, batch_size=4, stages=4,
                               samples_per_stage=48, gradient_checkpointing=False, group_by_length=grouping)
        result = train_llava(model, processor, tokenizers(), records, cfg, progress=False)
    trained = result["model"].eval()
    with torch.no_grad():
        losses = [float(trained(**collate(records[k : k + 8], processor)).loss) for k in range(0, len(records), 8)]
    return {"grouping": grouping, "padding": round(result["padding"], 4), "loss_after": round(sum(losses) / len(losses), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="also train the tiny LLaVA with each grouping")
    args = parser.parse_args()
    tasks, lengths, prompts = record_lengths()
    print(json.dumps({"records": len(lengths), "tokens": {"min": min(lengths), "mean": round(sum(lengths) / len(lengths)),
                                                          "max": max(lengths)}}))
    for world, batch, accum in LAYOUTS:
        row, kept = {}, {}
        for grouping, per_row in (("off", 1), ("step", 1), ("stage", 1), ("off", 2), ("off", 4)):
            name = grouping if per_row == 1 else f"off, pack {per_row}"
            row[name], kept[name] = (round(x, 4) for x in padding(tasks, lengths, prompts, world, batch, accum,
                                                                   grouping, per_row))
        print(json.dumps({"gpus": world, "batch": batch, "grad_accum": accum, "padding": row, "logits_kept": kept}))
    if args.train:
        for grouping in ("off", "step", "stage"):
            print(json.dumps(trained_loss(grouping)))


if __name__ == "__main__":
    main()
