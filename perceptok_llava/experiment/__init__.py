"""``perceptok-llava experiment relative-depth``: does writing depth tokens first help a model
answer relative-depth questions? (AURORA, arXiv 2412.03548, §4 at a scale anyone can run.)"""

from perceptok_llava.experiment.config import ARMS, DEFAULT_ARMS, SIZES, Arm, ExperimentSize
from perceptok_llava.experiment.report import markdown, summarise
from perceptok_llava.experiment.run import run_relative_depth

__all__ = ["ARMS", "DEFAULT_ARMS", "SIZES", "Arm", "ExperimentSize", "markdown", "run_relative_depth", "summarise"]
