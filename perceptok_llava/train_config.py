"""The options of LLaVA training (``train_llava``), checked when made."""

from __future__ import annotations

import dataclasses

GROUPINGS = ("step", "stage", "off")


@dataclasses.dataclass
class LlavaTrainConfig:
    # Output folder: the adapter, the tokenizer/processor with the new tokens, the vocabulary.
    out: str
    # "lora": LoRA adapters (below) on a pretrained model; "full": every weight is trained (the
    # vision tower too), for a model trained from scratch (``perceptok-llava experiment``).
    finetune: str = "lora"
    # LoRA rank, alpha and dropout (the original: r=128, α=256, 0.05, and whole embedding matrices).
    # A dropout above 0 keeps a copy of every adapted layer's input and its mask for the backward
    # pass: half as much activation memory again (benchmarks/lora_activations.py).
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    # Peak learning rate (cosine, 3 % warm-up) and the projector's.
    lr: float = 2e-4
    projector_lr: float = 2e-5
    # Records per micro-batch per process, and micro-batches per optimiser step.
    batch_size: int = 4
    grad_accum: int = 1
    # Curriculum: stages, records per stage (over all processes), "linear", "temperature" or
    # "uniform" (no curriculum).
    stages: int = 10
    samples_per_stage: int = 64
    schedule: str = "linear"
    # Weight of the depth reconstruction loss through DepthTokenizer.decode_soft (0 = off).
    recon_weight: float = 0.0
    # Recompute activations in the backward pass to save memory: True (every layer), False, or
    # "auto": the least of none, every 4th layer, every 2nd, every layer (AUTO_INTERVALS) with
    # which a trial step on the longest batch fits in memory on every rank (full checkpointing
    # costs about a third more compute, which a large GPU need not pay).
    gradient_checkpointing: bool | str = "auto"
    # Records of like length share a micro-batch (less padding; see CurriculumSampler), sorted
    # within each optimiser step ("step": every step's records as drawn, so only with several
    # ranks or accumulation), within each curriculum stage ("stage": the least padding, steps of
    # one kind of record), or not at all ("off").
    group_by_length: str = "step"
    # Records end to end in each row (1: one record a row, padded to the longest). With 2 or more
    # the rows pad far less, and attention is masked record by record (transformers reads the
    # restarts of position_ids); with sdpa that mask is dense, so attention costs as for the
    # whole row.
    pack: int = 1
    # Processes that prepare batches (images and tokens) while the model trains; None: 4 on a
    # GPU (at most the CPUs per local process), 0 (in the training process) on a CPU, whose
    # cores the model needs. The sampler then runs 2 batches a worker ahead, so a temperature
    # stage is drawn with the task losses of that many steps earlier.
    workers: int | None = None
    seed: int = 0
    # Hold out about this share of the source samples (all the records built from each, so no
    # image is both trained on and held out) and report their answer loss every ``eval_every``
    # optimiser steps (None: at the end of every curriculum stage) and at the end; 0: none.
    val_fraction: float = 0.0
    eval_every: int | None = None
    # Stop after this much wall time (rank 0's clock, agreed by every rank, so all stop together),
    # with a checkpoint: the same call again goes on from there. A SIGTERM to any rank stops a run
    # the same way.
    minutes: float | None = None
    # Save a checkpoint to OUT/checkpoint every this many optimiser steps (0: only when ``minutes``
    # or a SIGTERM stops the run); a run started again with the same options resumes from it (unless
    # ``resume`` is False) and ends as an uninterrupted run would. See perceptok_llava.resume.
    save_every: int = 500
    resume: bool = True
    # Replace a completed run found in OUT (False: that is an error, so a finished run is never
    # lost to a command run again by mistake).
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.lora_r < 1 or self.batch_size < 1 or self.grad_accum < 1 or self.stages < 1:
            raise ValueError("lora_r, batch_size, grad_accum and stages must be positive")
        if self.finetune not in ("lora", "full"):
            raise ValueError(f"finetune must be 'lora' or 'full', got {self.finetune!r}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.recon_weight < 0:
            raise ValueError(f"recon_weight must be ≥ 0, got {self.recon_weight}")
        if self.group_by_length not in GROUPINGS:
            raise ValueError(f"group_by_length must be one of {GROUPINGS}, got {self.group_by_length!r}")
        if self.pack < 1:
            raise ValueError(f"pack must be ≥ 1 (records a row), got {self.pack}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be ≥ 0, got {self.workers}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes must be positive, got {self.minutes}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError(f"eval_every must be ≥ 1 (or None: every curriculum stage), got {self.eval_every}")
        if self.save_every < 0:
            raise ValueError(f"save_every must be ≥ 0 (0: save only when the run stops early), got {self.save_every}")
        if self.gradient_checkpointing not in (True, False, "auto"):
            raise ValueError(f"gradient_checkpointing must be True, False or 'auto', got {self.gradient_checkpointing!r}")
