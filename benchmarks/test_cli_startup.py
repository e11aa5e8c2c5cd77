"""Command-line start-up: ``perceptok --help``, ``list``, ``info`` of a box preset and of the
shipped depth tokenizer, and the box commands, none of which imports torch, each a fresh process.

Run: ``.venv/bin/python -m pytest benchmarks/test_cli_startup.py --benchmark-columns=mean,stddev,rounds``
"""

from __future__ import annotations

import subprocess
import sys

import pytest

COMMANDS = {
    "help": ["--help"],
    "encode_boxes": ["encode", "boxes", "[[1, 2, 30, 40]]", "--canvas-size", "100", "100", "--preset", "gemini"],
    "decode_boxes": ["decode", "boxes", "<loc_10><loc_20><loc_300><loc_400>", "--preset", "florence2"],
    "list": ["list"],
    "info_boxes": ["info", "boxes"],
    "info_depth": ["info", "depth"],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_cli_startup(benchmark, name):
    run = lambda: subprocess.run([sys.executable, "-m", "perceptok.cli", *COMMANDS[name]],  # noqa: E731
                                 capture_output=True, check=True)
    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
