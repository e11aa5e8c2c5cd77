"""The README is executable: its Python snippets run (and print what their comments say), and
``.ci/run`` runs exactly its two set-up commands."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_python_snippets_run_and_print_what_they_say(tmp_path, monkeypatch):
    """Each block runs on its own (a fresh namespace: a reader may start at any section)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets-cache"))
    snippets = blocks("python")
    assert len(snippets) >= 4
    for code in snippets:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
        for promised in re.findall(r"^print\(.*\)\s+# (.+)$", code, flags=re.M):
            assert promised.split("…")[0].strip() in out.getvalue(), promised


def test_ci_runs_exactly_the_readme_setup_commands():
    setup = [b.strip() for b in blocks("bash")[:2]]
    assert setup[0].startswith("python3 -m venv .venv") and "torch==2.14.1 torchvision==0.29.1" in setup[0]
    assert "perceptok encode" in setup[0] and setup[1] == ".venv/bin/python -m pytest"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in ci if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert commands == setup
