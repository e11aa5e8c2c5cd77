"""Command-line start-up: ``perceptok --help`` and ``perceptok list`` (no torch), a box command
(torch, no torchvision, no depth libraries) and ``perceptok info boxes`` (torch), each a fresh
process.

Run: ``.venv/bin/python -m pytest benchmarks/test_cli_startup.py --benchmark-columns=mean,stddev,rounds``
"""

from __future__ import annotations

import subprocess
import sys

import pytest

COMMANDS = {
    "help": ["--help"],
    "encode_boxes": ["encode", "boxes", "[[1, 2, 30, 40]]", "--canvas-size", "100", "100", "--preset", "gemini"],
    "list": ["list"],
    "info_boxes": ["info", "boxes"],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_cli_startup(benchmark, name):
    run = lambda: subprocess.run([sys.executable, "-m", "perceptok.cli", *COMMANDS[name]],  # noqa: E731
                                 capture_output=True, check=True)
    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
