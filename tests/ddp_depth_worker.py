"""Run by ``tests/test_depth_cli.py`` under ``torchrun`` (gloo): trains the default depth
tokenizer for a few seconds of wall time (``--minutes``), then every rank writes how many steps
it took and a fingerprint of its weights to ``OUT/rank{R}.json``. The clocks of ranks 1 and 2
run 2 and 3 times as fast, as if they had started earlier: a rank that stopped on
its own clock would stop early and leave the others blocked in DDP's all-reduce.

    python -m torch.distributed.run --nproc_per_node=3 tests/ddp_depth_worker.py OUT MINUTES
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch.distributed as dist

from perceptok.depth import PRESETS
from perceptok.depth import train
from perceptok.depth.train import TrainConfig, train_depth
from skewed_clock import SkewedClock


def main(out: str, minutes: float) -> None:
    train.time = SkewedClock(1.0 + int(os.environ["RANK"]))
    # 7 scenes over 3 ranks: pools of 3, 2 and 2 maps; rank 0 also validates every 3 steps.
    cfg = TrainConfig(out=out, data=["synthetic:7"], steps=100_000, minutes=minutes, batch_size=3, eval_every=3,
                      val_scenes=2, workers=0)
    result = train_depth(PRESETS["default"], cfg, progress=False)
    digest = hashlib.sha256()
    for name, tensor in sorted(result.tokenizer.state_tensors().items()):
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    rank = dist.get_rank()
    Path(out, f"rank{rank}.json").write_text(json.dumps({"steps": result.steps, "weights": digest.hexdigest()}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
