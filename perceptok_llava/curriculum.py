"""Which training records each step sees: the original's linear annealing and the paper's
temperature schedule (AURORA §3.3).

- ``linear``: 10 stages; the atomic-task share falls 1.0, 0.9, …, 0.1 and the rest is drawn
  from the multi-task records (chain-of-thought and direct answers).
- ``temperature``: task t is drawn with probability softmax(w_t / τ(s)), τ(s) = τ0 / (1 + λ·s/S),
  where w_t are fixed weights or the latest task losses (``update_losses``), so hard tasks gain
  weight as τ falls.
- ``uniform``: no curriculum; every task present is equally likely in every stage (the control
  arms of ``perceptok-llava experiment``).

Deterministic per (seed, stage, task weights); every stage holds a whole number of global batches
(``batch_size`` records on each of ``world_size`` ranks), drawn, not repeated, to round it up, so
under DDP every rank gets the same number of batches in every stage and stages start on the same
step everywhere. A stage is drawn when iteration reaches it, so losses reported with
``update_losses`` before then (the same on every rank: reduce them first) steer it.

Given the records' lengths in tokens, records of like length share a batch: a batch pads to its
longest record, and a depth chain of thought is a third longer than a counting answer (LLaVA-1.5
trains with ``group_by_modality_length`` for the same reason). A stage's draws are cut into windows
of ``group_size`` records, each window is sorted by length and cut into global batches, and those
are shuffled within the window. A window of one optimiser step (ranks × batch × accumulation) keeps
every step's records as drawn and only sorts who shares a micro-batch; a window of the whole stage
saves the most padding but makes steps of one kind of record.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

SCHEDULES = ("linear", "temperature", "uniform")


class CurriculumSampler:
    """Yields record indices stage by stage.

    Args:
        tasks: the task name of every record (e.g. "depth_generation", "relative_depth_cot").
        atomic_tasks: which task names are atomic (perception only).
        samples_per_stage: indices drawn per stage, over all ranks.
        stages: number of stages S.
        schedule: "linear", "temperature" or "uniform".
        tau0, lam: the temperature schedule's τ0 and λ.
        weights: fixed task weights for "temperature" (default 1 each).
        seed: determinism.
        rank, world_size: this rank's share: batches rank, rank + world_size, … of each stage
            (1 rank: the whole global order, for a loader that shards it, such as accelerate's).
        batch_size: records per batch per rank; ``world_size`` × ``batch_size`` divides every stage.
        lengths: every record's length in tokens, to batch records of like length together
            (``None``: batches in the order drawn).
        group_size: records sorted together, a multiple of ``world_size`` × ``batch_size`` (default:
            the whole stage); a stage holds a whole number of groups.
    """

    def __init__(self, tasks: Sequence[str], atomic_tasks: Sequence[str], samples_per_stage: int, stages: int = 10,
                 schedule: str = "linear", tau0: float = 1.0, lam: float = 4.0, weights: dict[str, float] | None = None,
                 seed: int = 0, rank: int = 0, world_size: int = 1, batch_size: int = 1,
                 lengths: Sequence[int] | None = None, group_size: int | None = None):
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
        if samples_per_stage < 1 or batch_size < 1 or stages < 1:
            raise ValueError("samples_per_stage, batch_size and stages must be positive")
        if lengths is not None and len(lengths) != len(tasks):
            raise ValueError(f"lengths has {len(lengths)} entries for {len(tasks)} records; give one per record")
        self.lengths = None if lengths is None else torch.as_tensor(lengths, device="cpu")
        self.by_task: dict[str, list[int]] = {}
        for i, t in enumerate(tasks):
            self.by_task.setdefault(t, []).append(i)
        atomic = [t for t in self.by_task if t in set(atomic_tasks)]
        multi = [t for t in self.by_task if t not in set(atomic_tasks)]
        if schedule == "linear" and (not atomic or not multi):
            raise ValueError("the linear schedule needs both atomic and multi-task records; "
                             f"got atomic {atomic} and multi-task {multi}")
        self.atomic, self.multi = atomic, multi
        self.samples_per_stage, self.stages, self.schedule = samples_per_stage, stages, schedule
        self.tau0, self.lam = tau0, lam
        self.weights = {t: (weights or {}).get(t, 1.0) for t in self.by_task}
        self.seed, self.rank, self.world_size, self.batch_size = seed, rank, world_size, batch_size
        # stage → the task probabilities it was drawn with, and the task weights behind them
        self.drawn: dict[int, dict[str, float]] = {}
        self.drawn_weights: dict[int, dict[str, float]] = {}
        self._replay: dict[int, dict[str, float]] = {}  # a resumed run's stages: the weights they were drawn with
        unit = world_size * batch_size
        if group_size is not None and (group_size < 1 or group_size % unit):
            raise ValueError(f"group_size {group_size} must be a multiple of world_size × batch_size = {unit}")
        unit = group_size or unit  # a stage holds whole groups (so windows of one step start with the stage)
        self.stage_size = math.ceil(samples_per_stage / unit) * unit  # records per stage over all ranks
        self.group_size = group_size or self.stage_size

    def atomic_share(self, stage: int) -> float:
        """The linear schedule's atomic share: 1.0, 0.9, …, 0.1 over 10 stages."""
        return 1.0 - 0.9 * stage / max(self.stages - 1, 1)

    def temperature(self, stage: int) -> float:
        return self.tau0 / (1 + self.lam * stage / self.stages)

    def task_probabilities(self, stage: int, weights: dict[str, float] | None = None) -> dict[str, float]:
        """Each task's probability at ``stage``, with the temperature schedule's ``weights`` (default:
        the latest)."""
        if self.schedule == "uniform":
            return {t: 1 / len(self.by_task) for t in self.by_task}
        if self.schedule == "linear":
            share = self.atomic_share(stage)
            probs = {t: share / len(self.atomic) for t in self.atomic}
            probs.update({t: (1 - share) / len(self.multi) for t in self.multi})
            return probs
        tau = self.temperature(stage)
        weights = weights or self.weights
        logits = torch.tensor([weights[t] / tau for t in self.by_task], dtype=torch.float64, device="cpu")
        return dict(zip(self.by_task, torch.softmax(logits, 0).tolist()))

    def update_losses(self, losses: dict[str, float]) -> None:
        """Use the latest per-task losses as the temperature schedule's weights."""
        for task, loss in losses.items():
            if task in self.weights and math.isfinite(loss):
                self.weights[task] = loss

    def state_dict(self) -> dict:
        """What a resumed run needs to draw every stage as this run did: the latest task weights,
        and those each stage drawn so far was drawn with."""
        return {"weights": dict(self.weights), "drawn_weights": {s: dict(w) for s, w in self.drawn_weights.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.weights.update(state["weights"])
        self._replay = {int(s): dict(w) for s, w in state["drawn_weights"].items()}

    def stage_indices(self, stage: int) -> list[int]:
        """This rank's record indices for ``stage`` (the same on every call with the same weights;
        after ``load_state_dict``, a stage drawn before is drawn with the weights it had)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + stage)
        weights = self._replay.get(stage, self.weights)
        probs = self.task_probabilities(stage, weights)
        self.drawn[stage], self.drawn_weights[stage] = probs, dict(weights)
        names = list(probs)
        picks = torch.multinomial(torch.tensor([probs[t] for t in names], device="cpu"), self.stage_size, replacement=True,
                                  generator=g)
        out = []
        for k in picks.tolist():
            pool = self.by_task[names[k]]
            out.append(pool[int(torch.randint(len(pool), (), generator=g, device="cpu"))])
        b, w = self.batch_size, self.world_size
        if self.lengths is not None:
            out = sum((self._by_length(out[k : k + self.group_size], g) for k in range(0, len(out), self.group_size)), [])
        return [i for start in range(self.rank * b, len(out), w * b) for i in out[start : start + b]]

    def _by_length(self, window: list[int], g: torch.Generator) -> list[int]:
        """``window`` sorted by length, its global batches in random order."""
        ordered = torch.tensor(window, device="cpu")[self.lengths[window].argsort(descending=True, stable=True)]
        batches = ordered.view(-1, self.world_size * self.batch_size)
        return batches[torch.randperm(len(batches), generator=g, device="cpu")].flatten().tolist()

    def __iter__(self) -> Iterator[int]:
        for stage in range(self.stages):
            yield from self.stage_indices(stage)

    def __len__(self) -> int:
        return self.stages * self.stage_size // self.world_size
