"""Run by ``tests/test_llava_end_to_end.py`` under ``torchrun`` (gloo, 3 processes): trains the
tiny LLaVA in ``BASE`` with ``grad_accum=2`` on an uneven number of records for a few seconds of
wall time, then every rank writes its optimiser steps, a fingerprint of its trainable weights
(LoRA, new token rows, projector) and how often it took part in gathering the weights to save
to ``OUT/rank{R}.json``. The clocks of ranks 1 and 2 run 2 and 3
times as fast: a rank that stopped on its own clock would leave the others blocked. Rank 1 runs
out of memory unless every layer is checkpointed ("auto" must choose that on every rank).

    python -m torch.distributed.run --nproc_per_node=3 tests/ddp_llava_worker.py BASE OUT MINUTES

With ``sigterm`` in place of MINUTES, there is no time limit and rank 2 alone gets SIGTERM (as
from a cluster) during its 3rd optimiser step: every rank must stop after that step.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from perceptok import load
from perceptok_llava import train
from perceptok_llava.data import build_records
from perceptok_llava.sources import synthetic_samples
from perceptok_llava.train import LlavaTrainConfig, train_llava
from llava_fixtures import short_of_memory
from skewed_clock import SkewedClock


def sigterm_at_step(step: int) -> None:
    """This process gets SIGTERM during its ``step``-th optimiser step."""
    real, taken = train.optimiser_step, []

    def counted(*args, **kwargs):
        taken.append(1)
        if len(taken) == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    train.optimiser_step = counted


def main(base: str, out: str, minutes: float | None) -> None:
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    train.time = SkewedClock(1.0 + int(os.environ["RANK"]))
    from accelerate import Accelerator

    gathered, real_get_state_dict = [], Accelerator.get_state_dict
    # under FSDP and ZeRO-3 gathering the weights is a collective: every rank must take part
    Accelerator.get_state_dict = lambda self, *a, **k: gathered.append(1) or real_get_state_dict(self, *a, **k)
    if minutes is None and int(os.environ["RANK"]) == 2:
        sigterm_at_step(3)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration.from_pretrained(base)
    if int(os.environ["RANK"]) == 1:
        short_of_memory(model, every_layer=True)
    processor = AutoProcessor.from_pretrained(base)
    tokenizers = {"depth": load("depth:pooled"), "boxes": load("boxes"), "points": load("points")}
    records = build_records(synthetic_samples(3, size=(64, 80)), tokenizers["depth"], tokenizers["boxes"],
                            tokenizers["points"], seed=0)
    # 301 records a stage do not divide into steps of 3 ranks × batch 2 × grad_accum 2; batches are
    # prepared by a worker process on each rank and sorted by length within each step; the time
    # limit ends training long before the 2 stages are done
    cfg = LlavaTrainConfig(out=out, lora_r=4, lora_alpha=8, batch_size=2, grad_accum=2, stages=2,
                           samples_per_stage=301, gradient_checkpointing="auto", workers=1, minutes=minutes)
    result = train_llava(model, processor, tokenizers, records, cfg, progress=False)
    digest = hashlib.sha256()
    for name, p in sorted(result["model"].named_parameters()):
        if p.requires_grad:
            digest.update(name.encode() + p.detach().float().cpu().contiguous().numpy().tobytes())
    Path(out, f"rank{dist.get_rank()}.json").write_text(json.dumps({"steps": len(result["losses"]),
                                                                    "complete": result["complete"],
                                                                    "weights": digest.hexdigest(),
                                                                    "checkpointing": result["gradient_checkpointing"],
                                                                    "gathered_weights": len(gathered)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], None if sys.argv[3] == "sigterm" else float(sys.argv[3]))
