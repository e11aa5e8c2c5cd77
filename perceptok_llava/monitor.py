"""What a LLaVA training run shows while it runs and after it: ``OUT/log.jsonl``, one JSON line
per optimiser step as it ends (loss, learning rate, the gradient's norm before clipping,
curriculum stage, real tokens, seconds, tokens/s, and the held-out loss where it was measured),
and ``OUT/losses.png``, the loss and the throughput of every step."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from perceptok.checkpoint import atomic_write, write_text

LOG = "log.jsonl"
PLOT = "losses.png"


class StepLog:
    """Rank 0's ``OUT/log.jsonl``. A fresh run starts it empty; a resumed run keeps the steps its
    checkpoint had (a kill can leave later steps, or a line cut short, behind)."""

    def __init__(self, out: str | Path, resumed_from: int):
        self.path = Path(out) / LOG
        kept = [line for line, row in _lines(self.path) if row["step"] <= resumed_from] if resumed_from else []
        write_text(self.path, "".join(line + "\n" for line in kept))

    def add(self, **row: Any) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict]:
        return [row for _, row in _lines(self.path)]


def _lines(path: Path) -> list[tuple[str, dict]]:
    """The whole step lines of ``path`` and what they hold."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            out.append((line, row))
    return out


def plot_losses(rows: list[dict], path: str | Path, title: str = "LLaVA training",
                loss: str = "loss (nats per answer token)") -> None:
    """Two panels over the optimiser steps of ``rows`` (``StepLog`` rows): the loss of each step
    (what it is: ``loss``) with its moving mean and the held-out records' loss where it was
    measured, and the real tokens per second; curriculum stages start at the dotted lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    losses = [r["loss"] for r in rows]
    window = max(1, len(rows) // 25)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, height_ratios=(2, 1))
    top.plot(steps, losses, color="tab:blue", alpha=0.35 if window > 1 else 1.0, linewidth=1, label="each step")
    if window > 1:
        sums = [0.0, *itertools.accumulate(losses)]
        means = [(sums[i + 1] - sums[max(0, i + 1 - window)]) / min(window, i + 1) for i in range(len(losses))]
        top.plot(steps, means, color="tab:blue", linewidth=2, label=f"mean of the last {window} steps")
    held = [r for r in rows if "held_out_loss" in r]
    if held:
        top.plot([r["step"] for r in held], [r["held_out_loss"] for r in held], "o-", color="tab:orange",
                 markersize=5, label="held-out records (every task)")
    top.set_ylabel(loss)
    top.set_title(f"{title}: {len(rows)} optimiser steps")
    bottom.plot(steps, [r["tokens_per_s"] for r in rows], color="tab:green", linewidth=1)
    bottom.set_ylabel("real tokens / s")
    bottom.set_xlabel("optimiser step")
    for ax in (top, bottom):
        starts = [b["step"] - 0.5 for a, b in zip(rows, rows[1:]) if b["stage"] != a["stage"]]
        for k, x in enumerate(starts):
            ax.axvline(x, color="gray", linestyle="dotted", linewidth=1,
                       label="a curriculum stage starts" if k == 0 else None)
        ax.grid(alpha=0.3)
    top.legend(loc="upper right")
    fig.tight_layout()
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
