"""Stopping LLaVA training early and resuming it: ``EarlyStop`` (a time limit or a SIGTERM, agreed
by every rank), and ``OUT/checkpoint``, which holds what a run needs to go on exactly where it
stopped. That is the trained weights (LoRA, the new token rows, the projector; not the frozen
base), the optimiser, the learning-rate schedule, the curriculum sampler, every rank's random
number generators, and the run's progress (steps, losses, padding counts, task losses).

It is written with accelerate's ``save_state`` (which also saves FSDP's and DeepSpeed's sharded
states, their whole model included) every ``save_every`` optimiser steps and when the time limit
or a SIGTERM stops a run, into a temporary folder put in place by renames (``replace_folder``),
and removed when the run completes. Started again with the same command, a run loads it
(``load_state``), skips the micro-batches it has trained on (``skip_first_batches``) and ends as
an uninterrupted run would. ``OUT`` must be on a filesystem that every rank sees.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch

from perceptok.checkpoint import replace_folder, replaced_folders

CHECKPOINT = "checkpoint"
TRAINED = "trained.safetensors"
PROGRESS = "progress.json"
# options a resumed run may change: where and how long it runs, and how it saves memory or time
FREE_OPTIONS = ("out", "minutes", "workers", "save_every", "resume", "gradient_checkpointing", "eval_every",
                "overwrite")


@dataclasses.dataclass
class Progress:
    """A run's progress, saved with its checkpoints: optimiser steps taken, the loss of each, the
    (tokens, token slots) of every rank up to the last checkpoint (for the padding share), the
    latest mean answer loss per task, and the latest held-out losses."""

    step: int = 0
    losses: list[float] = dataclasses.field(default_factory=list)
    slots: list[float] = dataclasses.field(default_factory=lambda: [0.0, 0.0])
    task_means: dict[str, float] = dataclasses.field(default_factory=dict)
    held_out: dict = dataclasses.field(default_factory=dict)  # the latest held-out losses

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self, name, value)


def run_key(options: dict, records: list[dict], processes: int) -> dict:
    """What must not change for a run to resume: its options (except ``FREE_OPTIONS``), its
    records (a hash of their ids, tasks and targets) and its number of processes (each reads its
    own share of every stage)."""
    digest = hashlib.sha256()
    for r in records:
        digest.update(json.dumps([r.get("id"), r["task"], r["target"]]).encode())
    key = {k: v for k, v in options.items() if k not in FREE_OPTIONS}
    return json.loads(json.dumps({**key, "records": digest.hexdigest(), "processes": processes}))


def refuse_to_replace(out: str | Path, overwrite: bool) -> None:
    """Unless ``overwrite``, a ``ValueError`` when ``out`` holds a completed run (its
    ``train_log.json`` says so, and no checkpoint is left to resume from): training again there
    would replace its adapter."""
    log = Path(out) / "train_log.json"
    if overwrite or not log.is_file() or replaced_folders(Path(out) / CHECKPOINT):
        return
    try:
        complete = json.loads(log.read_text()).get("complete", True)
    except ValueError:
        return
    if complete:
        raise ValueError(f"{out} holds a completed run ({log}): choose another --out, or pass --overwrite "
                         "(overwrite=True) to replace it")


class Checkpoints:
    """Saving and resuming through ``accelerator``. ``model``: the unwrapped model, whose
    trainable parameters are saved; ``run``: ``run_key``; ``objects``: the rest of the state,
    each with ``state_dict`` and ``load_state_dict`` (the schedule, the sampler, ``Progress``)."""

    def __init__(self, accelerator: Any, model: Any, out: str | Path, run: dict, objects: list[Any]):
        self.accelerator, self.model, self.folder, self.run = accelerator, model, Path(out) / CHECKPOINT, run
        accelerator.register_save_state_pre_hook(self._save_trained)
        accelerator.register_load_state_pre_hook(self._load_trained)
        accelerator.register_for_checkpointing(*objects)

    def _trained(self) -> dict[str, torch.Tensor]:
        return {name: p for name, p in self.model.named_parameters() if p.requires_grad}

    def _save_trained(self, models: list, weights: list, output_dir: str) -> None:
        if not weights:  # FSDP and DeepSpeed save their (sharded) models themselves
            return
        weights.clear()  # not the frozen base: only what training changes
        if self.accelerator.is_main_process:
            from safetensors.torch import save_file

            trained = {name: p.detach().cpu().contiguous() for name, p in self._trained().items()}
            save_file(trained, Path(output_dir) / TRAINED)

    def _load_trained(self, models: list, input_dir: str) -> None:
        path = Path(input_dir) / TRAINED
        if not path.is_file():
            return
        from safetensors.torch import load_file

        saved, trained = load_file(path), self._trained()
        wrong = sorted(n for n in saved.keys() | trained.keys()
                       if n not in saved or n not in trained or saved[n].shape != trained[n].shape)
        if wrong:
            raise ValueError(f"{path} does not fit this model ({len(wrong)} trained tensors differ, e.g. {wrong[0]}): "
                             "resume with the model and options that wrote it, or start over with resume=False")
        with torch.no_grad():
            for name, p in trained.items():
                p.copy_(saved[name])
        models.clear()  # loaded here; accelerate has nothing left to load

    @property
    def _tmp(self) -> Path:
        return self.folder.with_name(f".{CHECKPOINT}.tmp")

    def save(self, step: int) -> None:
        """The state after ``step`` optimiser steps, put in place atomically. Every rank calls it."""
        acc, tmp = self.accelerator, self._tmp
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)  # a save that a kill cut short
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            (tmp / PROGRESS).write_text(json.dumps({"step": step, "run": self.run}))
            replace_folder(tmp, self.folder)
        acc.wait_for_everyone()

    def resume(self) -> int:
        """Load the latest checkpoint, if any; the optimiser steps it had taken (0: none). A
        checkpoint of another run (``run_key`` differs) is an error that names what changed."""
        found = next((f for f in replaced_folders(self.folder) if (f / PROGRESS).is_file()), None)
        if found is None:
            return 0
        saved = json.loads((found / PROGRESS).read_text())
        changed = sorted(k for k in self.run.keys() | saved["run"].keys() if self.run.get(k) != saved["run"].get(k))
        if changed:
            was, now = saved["run"], self.run
            what = ", ".join("other records" if k == "records" else f"{k} {was.get(k)!r} → {now.get(k)!r}"
                             for k in changed)
            raise ValueError(f"{found} is the checkpoint of another run ({what}): run the same command again to "
                             "resume it, or start over with --no-resume (resume=False) or another --out")
        self.accelerator.load_state(str(found))
        return int(saved["step"])

    def finish(self) -> None:
        """The run is complete: its checkpoints go, and what a save cut short left. Every rank calls it."""
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            for folder in replaced_folders(self.folder):
                shutil.rmtree(folder if folder == self.folder else folder.parent, ignore_errors=True)
            shutil.rmtree(self._tmp, ignore_errors=True)


class EarlyStop:
    """Whether to stop before the end, agreed at every optimiser step (one all-reduce) so that every
    rank stops at the same one: ``minutes`` of wall time are up on rank 0's clock, or any rank got
    SIGTERM (what a cluster sends before it ends or preempts a job; the run then saves a
    checkpoint and returns). ``close`` gives SIGTERM back its previous handler."""

    def __init__(self, minutes: float | None, accelerator: Any):
        self.minutes, self.accelerator, self.started = minutes, accelerator, time.time()
        self.signalled, self._previous = False, None
        if threading.current_thread() is threading.main_thread():  # only there can Python take signals
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.signalled = True

    def now(self) -> bool:
        late = self.accelerator.is_main_process and self.minutes is not None and \
            time.time() - self.started > self.minutes * 60
        if self.accelerator.num_processes == 1:
            return late or self.signalled
        flag = torch.tensor([float(late or self.signalled)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum")[0] > 0)

    def close(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None
