"""Activation (gradient) checkpointing of a transformers model, under a PEFT wrapper if any:
every n-th layer or none (``set_checkpointing``), and the least of it with which a training step
fits in memory on every rank (``least_checkpointing``, what ``gradient_checkpointing="auto"``
uses: checkpointing costs a recomputed forward, about a third more time a step).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

# What least_checkpointing tries, in order: checkpoint every n-th layer (0: none).
AUTO_INTERVALS = (0, 4, 2, 1)


def set_checkpointing(model: Any, every: int) -> None:
    """Activation (gradient) checkpointing of every ``every``-th layer (0: off) of the
    transformers model, under a PEFT wrapper if any, non-reentrant. transformers ≥ 5.2x names it
    "activation checkpointing"; versions without ``every_n_layers`` checkpoint every layer."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    new = hasattr(base, "activation_checkpointing_enable")  # the old names warn there
    (base.activation_checkpointing_disable if new else base.gradient_checkpointing_disable)()
    if every:
        enable = base.activation_checkpointing_enable if new else base.gradient_checkpointing_enable
        enable({"use_reentrant": False}, **({"every_n_layers": every} if _intervals(base) else {}))
        base.enable_input_require_grads()


def _intervals(model: Any) -> bool:
    """Whether this transformers version can checkpoint every n-th layer only."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    return "every_n_layers" in inspect.signature(enable).parameters


def is_checkpointing(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return bool(base.is_activation_checkpointing if hasattr(base, "is_activation_checkpointing")
                else base.is_gradient_checkpointing)


def least_checkpointing(model: Any, batch: dict[str, torch.Tensor], accelerator: Any) -> int:
    """The first of ``AUTO_INTERVALS`` (none or every layer where transformers cannot do every
    n-th) with which a trial step of ``batch`` fits on every rank (every layer if none does); the
    model is left set to it."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for every in AUTO_INTERVALS if _intervals(base) else (0, 1):
        set_checkpointing(model, every)
        if not _runs_out_of_memory(model, batch, accelerator):
            return every
    return every


def _runs_out_of_memory(model: Any, batch: dict[str, torch.Tensor], accelerator: Any) -> bool:
    """One forward and backward of ``batch`` on the bare model (before ``accelerator.prepare``,
    so no DDP state differs between a rank that failed and one that did not), with the memory the
    optimiser and DDP will add held aside; True on every rank if any rank ran out of memory (one
    collective, so the ranks stay in step)."""
    model.to(accelerator.device)
    batch = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in batch.items()
             if k not in ("task_index", "segment")}
    failed = False
    held: list[torch.Tensor] = []  # on a GPU, room for what training adds: AdamW's two moments, DDP's buckets
    try:
        if accelerator.device.type == "cuda":
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            held.append(torch.empty(3 * trainable, dtype=torch.float32, device=accelerator.device))
        with accelerator.autocast():
            loss = model(**batch, use_cache=False).loss
        loss.backward()
    except torch.OutOfMemoryError:
        failed = True
    loss = None  # drops the graph of a backward that failed
    held.clear()
    model.zero_grad(set_to_none=True)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    flag = torch.tensor([float(failed)], device=accelerator.device)
    return bool(accelerator.reduce(flag, reduction="sum")[0] > 0) if accelerator.num_processes > 1 else failed
