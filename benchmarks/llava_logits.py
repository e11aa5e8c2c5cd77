"""What computing logits only from a batch's first answer on (``keep_answer_logits``) saves a
training step, against logits at every position (what training did before): the LM head and the
loss at LLaVA-1.5-7B's widths (hidden 4,096, 32,064 logits, bf16), forward and backward, on real
batch layouts: the first micro-batch of 16 of curriculum stages 0, 4 and 9 (the CLI's defaults,
records from ``benchmarks/llava_padding.py``: each record's prompt with its 575 image tokens, its
answer, padding to the longest). The decoder layers are left out: they cost the same either way.

Per batch: the logit positions, the bytes autograd keeps for the backward pass (parameters
excepted; the float32 log-probabilities of the loss dominate) and the wall time of forward and
backward, both arms in the same run.

Run: ``.venv/bin/python benchmarks/llava_logits.py``   (about two minutes on 2 cores)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from llava_padding import record_lengths  # noqa: E402
from perceptok_llava.batches import IGNORE, keep_answer_logits  # noqa: E402
from perceptok_llava.curriculum import CurriculumSampler  # noqa: E402
from perceptok_llava.data import ATOMIC_TASKS  # noqa: E402
from saved_tensors import saved_bytes  # noqa: E402

BATCH, STAGES = 16, (0, 4, 9)


def head_only():
    """LLaMA-7B's embedding, final norm and LM head with no decoder layer, in bf16."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=64, num_hidden_layers=0,
                         num_attention_heads=32)
    return LlamaForCausalLM(config).to(torch.bfloat16)


def layout(lengths: list[int], prompts: list[int], rows: list[int]) -> dict[str, torch.Tensor]:
    """A right-padded batch of the records ``rows``: random ids, labels on each answer only."""
    width = max(lengths[i] for i in rows)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 32064, (len(rows), width), generator=g)
    labels = torch.full_like(ids, IGNORE)
    for r, i in enumerate(rows):
        labels[r, prompts[i] : lengths[i]] = ids[r, prompts[i] : lengths[i]]
    return {"input_ids": ids, "attention_mask": (labels != IGNORE) | (torch.arange(width) < torch.tensor(
        [lengths[i] for i in rows])[:, None]), "labels": labels}


def step(model, batch: dict) -> tuple[int, float]:
    """Bytes saved for the backward pass, and seconds, of one forward and backward."""
    start = time.perf_counter()
    with saved_bytes(model) as kept:
        loss = model(**batch).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(kept.values()), time.perf_counter() - start


def main() -> None:
    tasks, lengths, prompts = record_lengths()
    sampler = CurriculumSampler(tasks, ATOMIC_TASKS, 2000, stages=10, seed=0, batch_size=BATCH, lengths=lengths,
                                group_size=BATCH)
    model = head_only()
    totals = {"all": [0, 0.0], "answers": [0, 0.0]}
    for stage in STAGES:
        full = layout(lengths, prompts, sampler.stage_indices(stage)[:BATCH])
        kept = keep_answer_logits(full)
        row = {"stage": stage, "positions": full["labels"].shape[1], "kept": kept["logits_to_keep"]}
        for arm, batch in (("all", full), ("answers", kept)):
            saved, seconds = step(model, batch)
            totals[arm][0] += saved
            totals[arm][1] += seconds
            row[arm] = {"saved_mib": round(saved / 2**20, 1), "seconds": round(seconds, 2)}
        print(json.dumps(row))
    print(json.dumps({"saved_ratio": round(totals["all"][0] / totals["answers"][0], 2),
                      "time_ratio": round(totals["all"][1] / totals["answers"][1], 2)}))


if __name__ == "__main__":
    main()
