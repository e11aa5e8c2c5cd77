"""Losses beside the LM's own: the depth reconstruction loss through ``decode_soft`` (AURORA §3.3)
and the per-task answer losses that drive the temperature schedule."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from perceptok.depth import GridDepthTokenizer
from perceptok_llava.batches import IGNORE
from perceptok_llava.vocab import PerceptionVocab


def reconstruction_loss(logits: torch.Tensor, labels: torch.Tensor, vocab: PerceptionVocab, name: str = "depth") -> torch.Tensor:
    """MSE between decode_soft of the predicted code distributions and the decoded target codes,
    over every complete depth span among the labels (AURORA §3.3), each decoded on its own grid
    (a grid marker after the start token names it; the first grid without one).

    logits ``(B, T, V)``, labels ``(B, T)``. Every span of the batch is found and gathered at once
    (two reads of the host: where the spans start, and which are whole on which grid)."""
    tok = vocab.tokenizers[name]
    if not isinstance(tok, GridDepthTokenizer) or not hasattr(tok, "decode_soft"):
        return logits.new_zeros(())
    n, device = tok.tokens_per_map, labels.device
    code_ids = torch.tensor(vocab.lm_ids[name], device=device)
    markers = torch.tensor(vocab.markers.get(name, []), dtype=labels.dtype, device=device)
    rows, pos = (labels == vocab.delimiters[name]["start"]).nonzero(as_tuple=True)  # (S,) each
    padded = F.pad(labels, (0, n + 2), value=IGNORE)  # a span cut off by the end reads IGNORE
    is_marker = padded[rows, pos + 1][:, None] == markers  # (S, markers)
    marked = is_marker.any(1)
    grid = torch.where(marked, is_marker.int().argmax(1) + 1, 0)  # index into tok.config.grids
    at = (pos + 1 + marked)[:, None] + torch.arange(n, device=device)  # (S, n): the codes' positions
    spans = padded[rows[:, None], at]
    whole = torch.where(torch.isin(spans, code_ids).all(1), grid, -1).tolist()
    errors, count = logits.new_zeros(()), 0
    for g in sorted(set(whole) - {-1}):
        pick = torch.tensor([k for k, w in enumerate(whole) if w == g], device=device)
        # logits at position p predict token p + 1; only the code columns are gathered
        picked = logits[rows[pick][:, None, None], at[pick][:, :, None] - 1, code_ids]  # (S_g, n, codes)
        pred = tok.decode_soft(picked.float().softmax(-1), tok.config.grids[g])
        with torch.no_grad():
            targets = vocab.from_lm(name, spans[pick])
            truth = tok.decode_soft(F.one_hot(targets, tok.vocab_size).float(), tok.config.grids[g])
        errors = errors + F.mse_loss(pred, truth.to(pred.device), reduction="sum").to(errors.dtype)
        count += pred.numel()
    return errors / count if count else errors


def record_losses(logits: torch.Tensor, labels: torch.Tensor, records: int,
                  segment: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each record's mean loss over its answer tokens, ``(records,)`` float64, and how many it has,
    ``(records,)`` int64 (a record without answer tokens gets a loss of 0). logits ``(B, K, V)``
    and labels ``(B, K)`` (K ≤ T: the last K positions, ``keep_answer_logits``) are read at the
    answer positions only (not the whole batch in float32); ``segment`` ``(B, T)`` names each
    input token's record in packed rows (default: row i is record i)."""
    target = labels[:, 1:]  # token t predicts t + 1
    rows, cols = (target != IGNORE).nonzero(as_tuple=True)
    ce = F.cross_entropy(logits[rows, cols].float(), target[rows, cols], reduction="none").double()
    record = rows if segment is None else segment[:, -target.shape[1]:][rows, cols].to(rows.device)
    sums = torch.bincount(record, weights=ce, minlength=records)  # per record, float64
    counted = torch.bincount(record, minlength=records)
    return sums / counted.clamp_min(1), counted


class TaskLosses:
    """Per-task sums and counts of per-record answer losses between optimiser steps."""

    def __init__(self, names: list[str], device: torch.device):
        self.names = names
        self.totals = torch.zeros(2, len(names), device=device, dtype=torch.float64)  # (sum, count) per task

    def add(self, logits: torch.Tensor, labels: torch.Tensor, task_index: torch.Tensor,
            segment: torch.Tensor | None = None) -> None:
        """Each record's mean answer loss (``record_losses``) added to its task's sums;
        ``task_index`` gives each record's task."""
        means, counted = record_losses(logits, labels, len(task_index), segment)
        task_index = task_index.to(self.totals.device)
        self.totals[0].index_add_(0, task_index, means.to(self.totals.device))
        self.totals[1].index_add_(0, task_index, (counted > 0).double().to(self.totals.device))

    def reduce(self, accelerator: Any) -> dict[str, float]:
        """Means over every rank since the last call (tasks not seen are left out); resets."""
        totals = accelerator.reduce(self.totals, reduction="sum")
        self.totals.zero_()
        return {name: float(totals[0, i] / totals[1, i]) for i, name in enumerate(self.names) if totals[1, i] > 0}
