"""Checkpoint files: atomic writes and strict, explained failures."""

from __future__ import annotations

import json
import os

import pytest

import perceptok
from perceptok import BoxTokenizerConfig, CheckpointError
from perceptok.checkpoint import atomic_write, write_text


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "config.json"
    write_text(target, "old")

    def crash(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_saved_files_get_ordinary_permissions(tmp_path):
    write_text(tmp_path / "a.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_invalid_saved_values_are_refused_with_the_file_name(tmp_path):
    perceptok.load("boxes").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["bins"] = 1
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config.json: invalid BoxTokenizerConfig: bins must be"):
        perceptok.load(tmp_path)


@pytest.mark.parametrize("fields, match", [
    ({"bins": 1}, "bins"),
    ({"quantization": "nearest"}, "quantization"),
    ({"order": "zx"}, "order"),
    ({"layout": "pix2seq"}, "layout"),
    ({"token_format": "<X>"}, "one positional field"),
    ({"token_format": "<X_{}_{}>"}, "one positional field"),
])
def test_config_validation(fields, match):
    with pytest.raises(ValueError, match=match):
        BoxTokenizerConfig(**fields)


def test_custom_config_round_trips(tmp_path):
    tok = perceptok.BoxTokenizer(BoxTokenizerConfig(preset="custom", bins=100, order="yx", token_format="<bin{:03d}>",
                                                    layout="paligemma"))
    tok.save_pretrained(tmp_path)
    again = perceptok.load(tmp_path)
    assert again.config == tok.config
    assert again.to_text(again.encode([[0.1, 0.2, 0.3, 0.4]])) == "<bin020><bin010><bin040><bin030>"
