"""What the relative-depth experiment trains: model sizes and arms.

Every arm of one run trains the same LLaVA architecture (a CLIP vision tower and a Llama LM,
built from configs, every weight trained from the same seeded initialisation) on the same
images, marked points, steps, optimiser and seeds; arms differ only in supervision.
"""

from __future__ import annotations

import dataclasses

QUESTION_TASKS = ("relative_depth_direct", "relative_depth_cot")
POINT_COUNTS = (2, 3, 4, 5)  # 2: BLINK's relative depth; 3–5: HardBLINK's


@dataclasses.dataclass(frozen=True)
class Arm:
    """One way to supervise the same questions.

    Attributes:
        name: short name used in results and plots.
        tasks: the curriculum tasks it trains on (``perceptok_llava.data`` task names).
        schedule: the ``CurriculumSampler`` schedule: "linear" (AURORA's annealing from
            depth generation to questions) or "uniform" (no curriculum).
        depth: the depth tokenizer of its chains of thought: "depth" (the shipped VQ-VAE) or
            "depth:pooled" (the pooled baseline, same vocabulary size).
        about: one line for the README and the plot's legend.
    """

    name: str
    tasks: tuple[str, ...]
    schedule: str
    depth: str = "depth"
    about: str = ""

    @property
    def question_task(self) -> str:
        """The task whose prompt the arm is asked at test time."""
        return "relative_depth_cot" if "relative_depth_cot" in self.tasks else "relative_depth_direct"


ARMS = {arm.name: arm for arm in (
    Arm("direct", ("relative_depth_direct",), "uniform", about="questions answered directly"),
    Arm("direct+depth", ("depth_generation", "relative_depth_direct"), "linear",
        about="direct answers, with depth generation as a curriculum task (multi-task control)"),
    Arm("cot", ("depth_generation", "relative_depth_cot"), "linear",
        about="depth tokens, then the answer; AURORA's linear annealing curriculum"),
    Arm("cot-no-curriculum", ("depth_generation", "relative_depth_cot"), "uniform",
        about="the same chain of thought, tasks mixed evenly throughout"),
    Arm("cot-pooled", ("depth_generation", "relative_depth_cot"), "linear", depth="depth:pooled",
        about="the chain of thought with pooled-baseline depth tokens instead of the VQ-VAE's"),
)}
DEFAULT_ARMS = ("direct", "cot", "cot-no-curriculum", "cot-pooled")


@dataclasses.dataclass(frozen=True)
class ExperimentSize:
    """A model and data scale. Axis legend: images are ``image_side`` × ``image_side`` pixels,
    cut into ``(image_side / patch)²`` vision tokens.

    Attributes:
        image_side, patch: the vision tower's input side and patch side, in pixels.
        vision_hidden, vision_layers: the CLIP vision tower's width and depth.
        lm_hidden, lm_layers, lm_heads: the Llama LM's width, depth and attention heads.
        train_scenes: synthetic training scenes (one question each, 2–5 points).
        test_per_count: test questions per point count (2, 3, 4, 5), on other scenes.
        steps, batch_size, lr: optimiser steps per arm, records per step, peak learning rate
            (AdamW, cosine with 3 % warm-up).
        stages: curriculum stages.
    """

    image_side: int
    patch: int
    vision_hidden: int
    vision_layers: int
    lm_hidden: int
    lm_layers: int
    lm_heads: int
    train_scenes: int
    test_per_count: int
    steps: int
    batch_size: int
    lr: float
    stages: int = 10

    def __post_init__(self) -> None:
        if self.image_side % self.patch:
            raise ValueError(f"image_side {self.image_side} must be a multiple of patch {self.patch}")
        if self.lm_hidden % self.lm_heads:
            raise ValueError(f"lm_hidden {self.lm_hidden} must be a multiple of lm_heads {self.lm_heads}")
        if min(self.train_scenes, self.test_per_count, self.steps, self.batch_size, self.stages) < 1:
            raise ValueError("train_scenes, test_per_count, steps, batch_size and stages must be positive")


SIZES = {
    # a miniature for tests: minutes on a CPU, says nothing about the method
    "tiny": ExperimentSize(image_side=32, patch=8, vision_hidden=32, vision_layers=1, lm_hidden=32, lm_layers=2,
                           lm_heads=4, train_scenes=12, test_per_count=2, steps=10, batch_size=4, lr=2e-3, stages=2),
    # the default: the four default arms × 3 seeds in 41 minutes on a 2-core CPU (measured)
    "small": ExperimentSize(image_side=64, patch=8, vision_hidden=64, vision_layers=2, lm_hidden=128, lm_layers=3,
                            lm_heads=4, train_scenes=600, test_per_count=50, steps=500, batch_size=16, lr=1e-3),
    # sized for one GPU in about 10 minutes (an estimate: not yet measured on a GPU)
    "base": ExperimentSize(image_side=112, patch=14, vision_hidden=256, vision_layers=4, lm_hidden=512, lm_layers=6,
                           lm_heads=8, train_scenes=4000, test_per_count=100, steps=1000, batch_size=32, lr=5e-4),
}
