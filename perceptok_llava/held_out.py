"""Held-out records for LLaVA training: a split by source sample (no image is both trained on and
held out, though a sample gives records of several tasks), and the answer losses of the held-out
records, overall and per task, every record counted once over all ranks."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import torch

from perceptok_llava.losses import record_losses


def sample_of(record: dict) -> str:
    """The source sample a record was built from: its id up to the last "/" (``build_records``
    names records SAMPLE/TASK)."""
    return str(record.get("id", "")).rsplit("/", 1)[0]


def split_held_out(records: list[dict], fraction: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(training records, held-out records): ``fraction`` of the source samples (at least one),
    those first in an order given by a hash of (seed, sample), so the split is the same on every
    rank, in every run and on resuming."""
    if fraction <= 0:
        return records, []
    samples = sorted({sample_of(r) for r in records},
                     key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    out = set(samples[: max(1, round(fraction * len(samples)))])
    if len(out) == len(samples):
        raise ValueError(f"holding out {fraction} of {len(samples)} source samples leaves nothing to train on: "
                         "choose a smaller --val-fraction, or more data")
    return [r for r in records if sample_of(r) not in out], [r for r in records if sample_of(r) in out]


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """Answer losses over the held-out records: ``loss``, the mean over all their answer tokens
    (as the training loss is), and ``tasks``, each task's mean over its records."""

    loss: float
    tasks: dict[str, float]


@torch.no_grad()
def held_out_losses(model: Any, loader: Any, accelerator: Any, task_names: list[str]) -> HeldOut:
    """The answer losses over the held-out records of ``loader`` (accelerate's prepared loader of
    ``training_batch`` batches: every rank runs as many batches, and ``gather_for_metrics`` drops
    the records repeated to even them out). The model is in eval mode meanwhile (no dropout) and
    back in training mode after."""
    model.eval()
    # per task: (sum of record means, records, sum of token losses, tokens)
    totals = torch.zeros(4, len(task_names), dtype=torch.float64, device=accelerator.device)
    for batch in loader:
        task_index, segment, labels = batch.pop("task_index"), batch.pop("segment", None), batch.pop("labels")
        logits = model(**batch, use_cache=False).logits
        means, counted = record_losses(logits, labels, len(task_index), segment)
        means, counted, task_index = accelerator.gather_for_metrics((means, counted, task_index.to(means.device)))
        for row, values in enumerate((means, (counted > 0).double(), means * counted, counted.double())):
            totals[row].index_add_(0, task_index, values)
    model.train()
    tasks = {name: float(totals[0, i] / totals[1, i]) for i, name in enumerate(task_names) if totals[1, i] > 0}
    return HeldOut(float(totals[2].sum() / totals[3].sum().clamp_min(1)), tasks)
