"""Training loop of the depth tokenizer: one CPU, one GPU, or many through ``torchrun`` /
``accelerate launch`` (DDP; each rank renders its share of the scenes and draws its own
batches on its device; the VQ codebook is synchronised by vector-quantize-pytorch).

Under DDP every rank takes the same steps: rank 0 alone reads the clock, and at every step it
broadcasts whether to stop and how many steps the run will have, from which every rank derives
the same learning rate. Validation and saving happen on rank 0 between two steps, with no
collective, so the other ranks simply wait at the next step's broadcast.

Two recipes:

- ``perceptok`` (ours): AdamW 1e-3 with warm-up and cosine decay, masked L1 + gradient loss on
  valid pixels + commitment, augmentation (crops at any aspect ratio, sparse and holed
  measurements, noise).
- ``aurora`` (the original, REFERENCE.md): Adam 3e-4, MSE + commitment, batch 8, no
  augmentation.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from perceptok.checkpoint import atomic_write
from perceptok.depth.config import DepthTokenizerConfig
from perceptok.depth.augment import Batch, Generators, make_batch, validation_batches
from perceptok.depth.data import MapPool, SourceStream
from perceptok.depth.evaluate import evaluate_depth
from perceptok.depth.tokenizer import DepthTokenizer
from perceptok.io.depth_files import DepthMap
from perceptok.io.manifest import read_manifest

RECIPES = ("perceptok", "aurora")


@dataclasses.dataclass
class TrainConfig:
    # Where checkpoints (checkpoint.pt) and the tokenizer (tokenizer/) are written.
    out: str
    # Data sources: "synthetic:N" and manifest paths.
    data: list[str]
    # "perceptok" or "aurora" (see the module docstring).
    recipe: str = "perceptok"
    # Optimiser steps; training also stops after `minutes` of wall time if that is set.
    steps: int = 2000
    minutes: float | None = None
    # Maps per batch per process (the aurora recipe uses 8).
    batch_size: int = 32
    # Peak learning rate (the aurora recipe uses 3e-4, constant).
    lr: float = 1e-3
    # Validation (held-out synthetic scenes) and checkpoint period, in steps.
    eval_every: int = 200
    seed: int = 0
    # Held-out synthetic scenes for validation.
    val_scenes: int = 64
    # Continue from out/checkpoint.pt when it exists.
    resume: bool = True
    # Processes rendering synthetic scenes (None: the cores but one); 0 renders in a thread of
    # this process. Training starts once a batch worth of maps is there.
    workers: int | None = None
    # Optional manifest of real maps scored at every validation (abs_rel, ordinal_acc, codebook
    # use of `perceptok eval depth`), to watch generalisation from synthetic training data.
    eval_manifest: str | None = None
    # Fine-tuning: start from the weights of this saved depth tokenizer (a preset such as
    # "depth", a folder or a Hub id), whose config is then the one trained. A checkpoint.pt in
    # `out` (resuming) takes precedence.
    init: str | None = None

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}, got {self.recipe!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be positive")


@dataclasses.dataclass
class StepLoss:
    """Scalars of one step (tensors, so that logging them is the only thing that waits for the device)."""

    total: torch.Tensor
    recon: torch.Tensor
    commit: torch.Tensor


def reconstruction_loss(pred: torch.Tensor, batch: Batch, commit: torch.Tensor, recipe: str) -> StepLoss:
    """Masked loss over measured pixels; ``pred`` is resized to the target's size if needed."""
    if pred.shape[-2:] != batch.target.shape[-2:]:
        pred = F.interpolate(pred, size=batch.target.shape[-2:], mode="bilinear", align_corners=False)
    m = batch.mask.float()
    denom = m.sum().clamp_min(1)
    if recipe == "aurora":
        recon = (((pred - batch.target) ** 2) * m).sum() / denom
    else:
        recon = ((pred - batch.target).abs() * m).sum() / denom
        for dim in (-1, -2):  # gradients where both neighbours are measured
            mg = m.narrow(dim, 1, m.shape[dim] - 1) * m.narrow(dim, 0, m.shape[dim] - 1)
            dp, dt = pred.diff(dim=dim), batch.target.diff(dim=dim)
            recon = recon + 0.5 * ((dp - dt).abs() * mg).sum() / mg.sum().clamp_min(1)
    return StepLoss(recon + commit, recon.detach(), commit.detach())


def _lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 0 at step ``total`` (the planned length of the run)."""
    if cfg.recipe == "aurora":
        return cfg.lr
    warmup = max(min(cfg.steps // 50, 200), 1)  # 2 % of the steps, at most 200
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Schedule:
    """How long the run is: ``steps``, or fewer when ``minutes`` of wall time end first. Only
    rank 0 reads the clock; every ``sync_every`` steps it broadcasts (stop now?, planned total
    steps), so every rank stops at the same step with the same learning rates. Between those
    steps nothing waits for the device."""

    def __init__(self, cfg: TrainConfig, step: int, device: torch.device, world: int, sync_every: int = 10):
        self.cfg, self.world, self.sync_every = cfg, world, sync_every
        self.rank0 = world == 1 or dist.get_rank() == 0
        self.started, self.first_step = time.time(), step
        self.total = cfg.steps
        self.state = torch.zeros(2, dtype=torch.float64, device=device)  # (stop, planned total)

    def plan(self, step: int) -> tuple[bool, int]:
        """(stop now?, planned total steps), identical on every rank."""
        if step >= self.cfg.steps:
            return True, self.total
        if self.cfg.minutes is None or (step - self.first_step) % self.sync_every:
            return False, self.total
        stop = False
        if self.rank0:
            elapsed, budget = time.time() - self.started, self.cfg.minutes * 60
            stop, done = elapsed >= budget, step - self.first_step
            if done:  # the pace so far sets the planned length
                self.total = min(self.cfg.steps, step + int((budget - elapsed) * done / max(elapsed, 1e-9)))
        if self.world > 1:
            self.state.copy_(torch.tensor([float(stop), float(self.total)], dtype=torch.float64, device="cpu"))
            dist.broadcast(self.state, src=0)
            stop, self.total = bool(self.state[0]), int(self.state[1])
        return stop, self.total


def _distributed() -> tuple[int, int, torch.device]:
    """Rank, world size and device; initialises the process group under torchrun/accelerate."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


@dataclasses.dataclass
class TrainResult:
    """What ``train_depth`` returns on each rank.

    Attributes:
        tokenizer: the trained tokenizer (this rank's copy; DDP keeps the copies identical).
        metrics: the last validation metrics (rank 0; empty elsewhere).
        steps: optimiser steps taken in all, a resumed run's earlier ones included.
    """

    tokenizer: DepthTokenizer
    metrics: dict
    steps: int


def _initial(tok_cfg: DepthTokenizerConfig | None, cfg: TrainConfig) -> DepthTokenizer:
    """A fresh tokenizer of ``tok_cfg``, or (``cfg.init``) the saved one to fine-tune."""
    if cfg.init is None:
        if tok_cfg is None:
            raise ValueError("give a DepthTokenizerConfig to train from scratch, or TrainConfig.init to fine-tune")
        return DepthTokenizer(tok_cfg)
    from perceptok.loading import load

    tok = load(cfg.init)
    if not isinstance(tok, DepthTokenizer):
        raise ValueError(f"--init {cfg.init!r} is a {tok.tokenizer_type!r} tokenizer; fine-tuning needs a VQ-VAE "
                         "depth tokenizer (e.g. the preset 'depth')")
    if tok_cfg is not None and tok_cfg != tok.config:
        raise ValueError(f"--init {cfg.init!r} brings its own config; drop --preset and --set when fine-tuning")
    return tok


def train_depth(tok_cfg: DepthTokenizerConfig | None, cfg: TrainConfig, progress: bool = True) -> TrainResult:
    """Train a depth tokenizer of ``tok_cfg`` from scratch, or fine-tune ``cfg.init`` (then
    ``tok_cfg`` is None or its config). Writes (rank 0) ``out/tokenizer`` (a ``save_pretrained``
    folder), ``out/checkpoint.pt`` (resumable) and ``out/log.jsonl``."""
    rank, world, device = _distributed()
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed + rank)
    tok = _initial(tok_cfg, cfg)
    tok_cfg = tok.config
    tok.card_sections = [("Training", _training_notes(cfg))]
    model = tok.model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4) if cfg.recipe != "aurora" \
        else torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step = 0
    ckpt = out / "checkpoint.pt"
    if cfg.resume and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    val = SourceStream([f"synthetic:{cfg.val_scenes}"], MapPool(device), seed=10_000 + cfg.seed, workers=cfg.workers,
                       progress=False) if rank == 0 else None
    real_maps = [e.load() for e in read_manifest(cfg.eval_manifest)] if cfg.eval_manifest else []
    stream = SourceStream(cfg.data, MapPool(device), seed=cfg.seed, workers=cfg.workers, rank=rank, world=world,
                          progress=progress and rank == 0)
    pool = stream.wait(cfg.batch_size)
    gens = Generators.seeded(cfg.seed * 7919 + rank * 104_729 + step, device)
    augment = cfg.recipe != "aurora"
    schedule = Schedule(cfg, step, device, world)
    metrics: dict = {}
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train depth ({cfg.recipe})", disable=not progress or rank != 0)
    while True:
        stop, total = schedule.plan(step)
        if stop:
            break
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, total, cfg)
        batch = make_batch(stream.wait(0), tok_cfg, cfg.batch_size, gens, augment=augment)
        pred, _, commit = ddp(batch.x)
        loss = reconstruction_loss(pred, batch, commit, cfg.recipe)
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        opt.step()
        step += 1
        bar.update(1)
        if step % 10 == 0:  # reading the loss waits for the device: not at every step
            bar.set_postfix(loss=f"{float(loss.recon):.4f}", commit=f"{float(loss.commit):.4f}", maps=len(pool))
        if rank == 0 and step % cfg.eval_every == 0:
            metrics = _validate(tok, val.wait(val.total), real_maps, tok_cfg)
            metrics.update(step=step, minutes=round((time.time() - schedule.started) / 60, 2), train_loss=float(loss.recon))
            _save(tok, model, opt, step, out, metrics)
            model.train()
    if rank == 0:
        metrics = _validate(tok, val.wait(val.total), real_maps, tok_cfg)
        metrics.update(step=step, minutes=round((time.time() - schedule.started) / 60, 2))
        _save(tok, model, opt, step, out, metrics)
    bar.close()
    if world > 1:
        dist.barrier()
    tok.model.eval()
    return TrainResult(tok, metrics, step)


def _training_notes(cfg: TrainConfig) -> str:
    command = " ".join(["perceptok", *sys.argv[1:]]) if Path(sys.argv[0]).name == "perceptok" else None
    lines = [f"- Recipe: `{cfg.recipe}`; data: {', '.join(f'`{d}`' for d in cfg.data)} "
             "(`synthetic:N` = N procedural scenes of `perceptok.synthetic`, seeded).",
             f"- Steps ≤ {cfg.steps}, wall time ≤ {cfg.minutes} min, batch {cfg.batch_size}, peak lr {cfg.lr}, seed {cfg.seed}."]
    if cfg.init:
        lines.append(f"- Fine-tuned from `{cfg.init}` (its weights were the starting point).")
    if command:
        lines.append(f"- Command: `{command}`")
    return "\n".join(lines)


@torch.no_grad()
def _validate(tok: DepthTokenizer, val: MapPool, real_maps: list[DepthMap], tok_cfg: DepthTokenizerConfig) -> dict:
    tok.model.eval()
    recon, ids = [], []
    for batch in validation_batches(val, tok_cfg):
        pred, batch_ids, _ = tok.model(batch.x)
        recon.append(float(reconstruction_loss(pred, batch, pred.new_zeros(()), "perceptok").recon) * len(batch.x))
        ids.append(batch_ids)
    used = torch.unique(torch.cat(ids)).numel() / tok_cfg.codebook_size
    metrics = {"val_l1_grad": round(sum(recon) / len(val), 5), "val_codebook_usage": round(used, 3)}
    if real_maps:
        real = evaluate_depth(tok, real_maps)
        metrics.update({f"real_{k}": real[k] for k in ("abs_rel", "ordinal_acc", "codebook_usage")})
    return metrics


def _save(tok: DepthTokenizer, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int, out: Path, metrics: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}
    atomic_write(out / "checkpoint.pt", lambda tmp: torch.save(state, tmp))
    tok.model.eval()
    tok.save_pretrained(out / "tokenizer")
    with open(out / "log.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(metrics) + "\n")
