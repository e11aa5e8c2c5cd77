"""The ``perceptok`` command line. Each subcommand lives in its own module."""

from perceptok.cli.main import main

__all__ = ["main"]
