"""Curriculum LoRA training of LLaVA with perception tokens (AURORA §3.3, with its gaps filled).

Default recipe (``LlavaTrainConfig``): LoRA on the language model's linear layers only (not the
vision tower), ``trainable_token_indices`` for the new rows of ``embed_tokens`` and ``lm_head``
(not the whole matrices), the projector trained at a tenth of the learning rate, labels masked to
the answer, the curriculum sampler, bf16 where the GPU has it, gradient checkpointing where memory
needs it, and the optional reconstruction loss through ``decode_soft``. Batches hold records of like
length (less padding) and are prepared by worker processes while the GPU trains. One process, or
many under ``torchrun`` / ``accelerate launch`` (DDP, or FSDP / DeepSpeed from an accelerate config;
each rank reads its own shard of every curriculum stage). A step's loss is the mean over all its
answer tokens, whichever micro-batch and rank hold them: the gradient of one large batch, however
the step is split (a mean per micro-batch would weigh a one-word answer's token like a whole
depth map's codes).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import itertools
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from perceptok.checkpoint import move_into, write_text
from perceptok_llava.batches import answer_tokens, check_image_tokens, longest, token_lengths, training_batch
from perceptok_llava.checkpointing import least_checkpointing, set_checkpointing
from perceptok_llava.curriculum import CurriculumSampler
from perceptok_llava.data import ATOMIC_TASKS
from perceptok_llava.held_out import held_out_losses, split_held_out
from perceptok_llava.losses import TaskLosses, reconstruction_loss
from perceptok_llava.monitor import PLOT, StepLog, plot_losses
from perceptok_llava.resume import Checkpoints, EarlyStop, Progress, refuse_to_replace, run_key
from perceptok_llava.train_config import LlavaTrainConfig
from perceptok_llava.vocab import PerceptionVocab, add_perception_tokens

LM_LINEAR = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def apply_lora(model: Any, vocab: PerceptionVocab, cfg: LlavaTrainConfig) -> Any:
    """LoRA on the LM's linear layers, the new token rows, and the projector; with
    ``cfg.finetune == "full"``, every weight instead."""
    if cfg.finetune == "full":
        model.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    ids = vocab.new_token_ids
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=LM_LINEAR,
                      trainable_token_indices={"embed_tokens": ids, "lm_head": ids},
                      modules_to_save=["multi_modal_projector"])
    return get_peft_model(model, lora)


def train_llava(model: Any, processor: Any, tokenizers: dict, records: list[dict], cfg: LlavaTrainConfig,
                progress: bool = True) -> dict[str, Any]:
    """Add the perception vocabularies, train with the curriculum, save to ``cfg.out``.

    Runs under ``accelerate`` (one process, ``torchrun``/``accelerate launch`` DDP, or FSDP and
    DeepSpeed from an accelerate config). Returns the per-step losses, the saved paths, the share
    of the batches' token slots that were padding, whether the run is complete, and the latest
    held-out losses (``held_out_loss``, ``held_out_tasks``) where ``val_fraction`` asks for them."""
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration
    from transformers import get_cosine_schedule_with_warmup

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    accelerator = Accelerator(mixed_precision="bf16" if bf16 else "no", gradient_accumulation_steps=cfg.grad_accum,
                              cpu=not cuda, dataloader_config=DataLoaderConfiguration(non_blocking=cuda))
    refuse_to_replace(cfg.out, cfg.overwrite)
    if not records:
        raise ValueError("no training records: the data holds neither depth maps nor boxes (images alone need "
                         "depth estimated: --depth-model ID, or build_records(..., estimator=MonocularDepth(ID)))")
    torch.manual_seed(cfg.seed)
    task_names = sorted({r["task"] for r in records})
    key = run_key(dataclasses.asdict(cfg), records, accelerator.num_processes)
    records, held = split_held_out(records, cfg.val_fraction, cfg.seed)
    check_image_tokens(model, processor, records[0])
    vocab = add_perception_tokens(model, processor.tokenizer, tokenizers)
    if cfg.gradient_checkpointing is True:
        set_checkpointing(model, 1)
    model = apply_lora(model, vocab, cfg)
    for tok in vocab.tokenizers.values():
        if hasattr(tok, "to"):
            tok.to(accelerator.device)
    projector = [p for n, p in model.named_parameters() if p.requires_grad and "multi_modal_projector" in n]
    others = [p for n, p in model.named_parameters() if p.requires_grad and "multi_modal_projector" not in n]
    opt = torch.optim.AdamW([{"params": others, "lr": cfg.lr}, {"params": projector, "lr": cfg.projector_lr}],
                            weight_decay=0.0)
    lengths = token_lengths(records, processor.tokenizer)
    # One global curriculum order; accelerate's prepared loader gives each rank every
    # num_processes-th batch, and every stage holds a whole number of batches on every rank.
    global_batch = cfg.batch_size * accelerator.num_processes
    sampler = CurriculumSampler([r["task"] for r in records], ATOMIC_TASKS, cfg.samples_per_stage, stages=cfg.stages,
                                schedule=cfg.schedule, seed=cfg.seed, batch_size=global_batch,
                                lengths=None if cfg.group_by_length == "off" else lengths,
                                group_size=global_batch * cfg.grad_accum if cfg.group_by_length == "step" else None)
    # the loader's own generator: starting its iterator (again, on resuming) leaves the global
    # random stream, which LoRA's dropout reads, as it was
    batches = functools.partial(training_batch, processor=processor, task_names=task_names, per_row=cfg.pack)
    loader = DataLoader(records, batch_size=cfg.batch_size, sampler=sampler, num_workers=loader_workers(cfg.workers),
                        pin_memory=cuda, generator=torch.Generator().manual_seed(cfg.seed), collate_fn=batches)
    held_loader = DataLoader(held, batch_size=cfg.batch_size, num_workers=loader_workers(cfg.workers), pin_memory=cuda,
                             collate_fn=batches) if held else None
    checkpointing = int(cfg.gradient_checkpointing is True)  # every n-th layer; 0: none
    if cfg.gradient_checkpointing == "auto":  # decided before DDP wraps the model, which must see every rank alike
        checkpointing = least_checkpointing(model, loader.collate_fn(longest(records, lengths, cfg.batch_size)), accelerator)
    model, opt, loader = accelerator.prepare(model, opt, loader)
    if held_loader is not None:
        held_loader = accelerator.prepare(held_loader)
    steps = max(1, math.ceil(len(loader) / cfg.grad_accum))
    schedule = get_cosine_schedule_with_warmup(opt, max(1, round(0.03 * steps)), steps)
    so_far = Progress()  # steps, losses, padding counts, task losses: saved with the checkpoints
    out_dir, unwrapped = Path(cfg.out), accelerator.unwrap_model(model)
    checkpoints = Checkpoints(accelerator, unwrapped, out_dir, key, [schedule, sampler, so_far])
    if progress and accelerator.is_main_process:
        counts = collections.Counter(r["task"] for r in records)
        print(f"train llava: {len(records)} records ({', '.join(f'{t} {n}' for t, n in sorted(counts.items()))}), "
              f"{len(held)} held out; {steps} optimiser steps of {global_batch * cfg.grad_accum} records on "
              f"{accelerator.num_processes} process{'es' * (accelerator.num_processes > 1)}", file=sys.stderr)
    resumed_from = checkpoints.resume() if cfg.resume else 0
    if resumed_from:
        loader = accelerator.skip_first_batches(loader, resumed_from * cfg.grad_accum)
        if progress and accelerator.is_main_process:
            print(f"train llava: resuming {checkpoints.folder} at step {resumed_from} of {steps}", file=sys.stderr)
    task_loss = TaskLosses(task_names, accelerator.device)
    slots = torch.zeros(2, device=accelerator.device, dtype=torch.float64)  # (tokens, token slots) since the last save

    def slot_totals() -> list[float]:  # every rank's (tokens, token slots) so far
        return (torch.tensor(so_far.slots, dtype=torch.float64, device=slots.device)
                + accelerator.reduce(slots, reduction="sum")).tolist()

    bar = tqdm(total=steps, initial=so_far.step, desc="train llava",
               disable=not progress or not accelerator.is_main_process)
    step_log = StepLog(out_dir, resumed_from) if accelerator.is_main_process else None
    per_stage = sampler.stage_size / (global_batch * cfg.grad_accum)  # optimiser steps a curriculum stage
    eval_every = cfg.eval_every or max(1, round(per_stage))
    model.train()
    last = time.perf_counter()
    early = EarlyStop(cfg.minutes, accelerator)  # from here to ``close``, SIGTERM stops the run at a step's end
    try:
        for window in steps_of(loader, cfg.grad_accum):
            stats = optimiser_step(model, opt, window, accelerator, cfg, vocab,
                                   task_loss if cfg.schedule == "temperature" else None, slots)
            lr = schedule.get_last_lr()[0]
            schedule.step()
            so_far.step += 1
            so_far.losses.append(stats.loss)
            seconds, last = time.perf_counter() - last, time.perf_counter()
            evaluated = {}
            if held_loader is not None and (so_far.step % eval_every == 0 or so_far.step == steps):
                result = held_out_losses(model, held_loader, accelerator, task_names)
                so_far.held_out = evaluated = {"held_out_loss": result.loss, "held_out_tasks": result.tasks}
                last = time.perf_counter()  # the next step's time leaves the evaluation out
            if step_log is not None:
                step_log.add(step=so_far.step, loss=stats.loss, lr=lr, grad_norm=stats.grad_norm,
                             stage=int((so_far.step - 1) // per_stage), tokens=stats.tokens, seconds=round(seconds, 4),
                             tokens_per_s=round(stats.tokens / max(seconds, 1e-9), 1), **evaluated)
            if cfg.schedule == "temperature":  # every rank gets the same means: the same next stage
                so_far.task_means.update(task_loss.reduce(accelerator))
                sampler.update_losses(so_far.task_means)
            bar.update(1)
            bar.set_postfix(loss=f"{so_far.losses[-1]:.4f}")
            stop = early.now()
            if stop or (cfg.save_every and so_far.step % cfg.save_every == 0 and so_far.step < steps):
                so_far.slots = slot_totals()
                slots.zero_()
                checkpoints.save(so_far.step)
                last = time.perf_counter()  # the next step's time leaves the saving out
            if stop:
                break
    finally:  # an error (an unreadable image, say) is then reported on a line of its own
        early.close()
        bar.close()
    tokens, total = slot_totals()
    padding = 1 - tokens / max(total, 1)  # the share of the batches' token slots that were padding
    losses, task_means = so_far.losses, so_far.task_means
    accelerator.wait_for_everyone()
    # on every rank: under FSDP and DeepSpeed ZeRO-3 gathering the whole weights is a collective
    weights = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        log = {"losses": losses, "config": dataclasses.asdict(cfg), "gradient_checkpointing": checkpointing,
               "stage_probabilities": sampler.drawn,
               "stage_weights": sampler.drawn_weights, "task_losses": task_means,
               "padding": padding, "resumed_from": resumed_from, "complete": so_far.step >= steps,
               **so_far.held_out}
        recon = f" + {cfg.recon_weight} × depth MSE" if cfg.recon_weight else ""
        for stale in out_dir.glob(".final.*.tmp"):  # left by a run killed while saving
            shutil.rmtree(stale, ignore_errors=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".final.", suffix=".tmp", dir=out_dir))
        try:  # written aside, then moved in file by file with train_log.json last: never a half-written run
            unwrapped.save_pretrained(staging, state_dict=weights)
            processor.save_pretrained(staging)
            vocab.save(staging)
            plot_losses(step_log.rows(), staging / PLOT, title=f"LLaVA training ({cfg.finetune}, {cfg.schedule} "
                        "curriculum)", loss=f"loss (nats per answer token{recon})")
            write_text(staging / "train_log.json", json.dumps(log))
            move_into(staging, out_dir, last="train_log.json")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if so_far.step >= steps:  # complete: the checkpoints go (a run stopped early keeps its own)
        checkpoints.finish()
    accelerator.wait_for_everyone()
    return {"losses": losses, "out": str(out_dir), "vocab": vocab, "model": unwrapped,
            "gradient_checkpointing": checkpointing, "padding": padding, "resumed_from": resumed_from,
            "complete": so_far.step >= steps, **so_far.held_out}


@dataclasses.dataclass(frozen=True)
class StepStats:
    """One optimiser step, over every rank: its loss, its real tokens (padding not counted), and
    the gradient's norm before clipping (None under DeepSpeed, which clips on its own)."""

    loss: float
    tokens: int
    grad_norm: float | None


def optimiser_step(model: Any, opt: Any, window: list[dict], accelerator: Any, cfg: LlavaTrainConfig,
                   vocab: PerceptionVocab, task_loss: TaskLosses | None, slots: torch.Tensor) -> StepStats:
    """One optimiser step over ``window``, this rank's micro-batches of the step. Every answer
    token of the step weighs alike, however its records are split into micro-batches and ranks:
    each micro-batch's summed loss is divided by the step's token count over every rank (one
    all-reduce). ``task_loss`` (the temperature schedule) gets every record's answer loss;
    ``slots`` counts (tokens, token slots) for the padding share."""
    targets = accelerator.reduce(torch.stack([answer_tokens(b["labels"]) for b in window]).sum(), reduction="sum")
    step_loss = torch.zeros(3, device=accelerator.device)  # (token loss, reconstruction loss, tokens) of this rank
    for k, batch in enumerate(window):
        task_index, segment = batch.pop("task_index"), batch.pop("segment", None)
        real = batch["attention_mask"] if segment is None else segment >= 0
        step_loss[2] += real.sum()
        slots[1] += real.numel()
        # gradients are reduced across ranks, clipped and applied after the window's last micro-batch
        accelerator.sync_gradients = k == len(window) - 1
        with contextlib.nullcontext() if accelerator.sync_gradients else accelerator.no_sync(model):
            # without a cache, packed rows are masked record by record
            out = model(**batch, use_cache=False, num_items_in_batch=targets)
            # accelerator.backward divides by grad_accum and the ranks' gradients are averaged:
            # both undone, so the step's gradient is that of the summed loss over its tokens
            loss = out.loss * (cfg.grad_accum * accelerator.num_processes)
            step_loss[0] += out.loss.detach()
            if cfg.recon_weight > 0 and "depth" in vocab.tokenizers:
                # a mean over each micro-batch's maps, averaged over the step's micro-batches and ranks
                recon = cfg.recon_weight * reconstruction_loss(out.logits, batch["labels"], vocab) / len(window)
                loss = loss + recon * cfg.grad_accum
                step_loss[1] += recon.detach()
            accelerator.backward(loss)
        if task_loss is not None:
            task_loss.add(out.logits.detach(), batch["labels"], task_index, segment)
    slots[0] += step_loss[2]
    norm = accelerator.clip_grad_norm_(model.parameters(), 1.0)  # None under DeepSpeed, which clips itself
    opt.step()
    opt.zero_grad(set_to_none=True)
    reduced = accelerator.reduce(step_loss, reduction="sum")
    if norm is not None:  # read with the step's other numbers: one host sync
        reduced = torch.cat([reduced, torch.as_tensor(norm, dtype=reduced.dtype, device=reduced.device).reshape(1)])
    token_loss, recon, tokens, *grad_norm = reduced.tolist()
    return StepStats(token_loss + recon / accelerator.num_processes, int(tokens), grad_norm[0] if grad_norm else None)


def steps_of(loader: Any, size: int) -> Iterator[list[dict]]:
    """The loader's micro-batches, ``size`` at a time: one optimiser step each (the last may be
    shorter). accelerate's prepared loader gives every rank the same number, so the steps line up."""
    batches = iter(loader)
    while window := list(itertools.islice(batches, size)):
        yield window


def loader_workers(asked: int | None) -> int:
    """``asked``, or by default 4 on a GPU, at most the CPUs of each local process less one for
    the process itself (``LOCAL_WORLD_SIZE``: torchrun's and accelerate's processes on this
    machine), and 0 on a CPU."""
    if asked is not None:
        return asked
    if not torch.cuda.is_available():
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(4, cpus // int(os.environ.get("LOCAL_WORLD_SIZE", "1")) - 1))


def load_trained(out: str | Path, base_model: str | Path, dtype: torch.dtype | None = None,
                 merge: bool = False) -> tuple[Any, Any, PerceptionVocab]:
    """Reload a trained model in one call: base weights, the saved processor, embeddings sized to
    it, the adapter and the checked vocabulary. ``merge=True`` folds the adapter into the weights
    (``merge_and_unload``) for inference: one matrix product per layer instead of three, the
    plain model's generation speed. A fully fine-tuned run (``finetune="full"``, no adapter in
    ``out``) is loaded from ``out`` itself and ``base_model`` is not read."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(out)
    if not (Path(out) / "adapter_config.json").is_file():
        model = LlavaForConditionalGeneration.from_pretrained(out, dtype=dtype).eval()
        vocab = PerceptionVocab.load(out)
        vocab.validate(processor.tokenizer, model)
        return model, processor, vocab
    from peft import PeftModel

    base = LlavaForConditionalGeneration.from_pretrained(base_model, dtype=dtype)
    if base.get_input_embeddings().weight.shape[0] < len(processor.tokenizer):
        base.resize_token_embeddings(len(processor.tokenizer), mean_resizing=False)
    model = PeftModel.from_pretrained(base, out).eval()
    if merge:
        model = model.merge_and_unload().eval()
    vocab = PerceptionVocab.load(out)
    vocab.validate(processor.tokenizer, model)
    return model, processor, vocab
