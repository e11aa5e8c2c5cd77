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


def _tiny_depth(seed: int, **changes):
    import dataclasses

    import torch

    from perceptok.depth import PRESETS, DepthTokenizer

    torch.manual_seed(seed)  # FSQ: a random VQ codebook is only initialised by its first batch
    return DepthTokenizer(dataclasses.replace(PRESETS["tiny"], quantizer="fsq", **changes))


def _depth_map():
    import torch

    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    return 1.0 + 0.05 * yy + 0.3 * torch.sin(xx / 3)


def test_a_crash_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    """Issue 10: config.json was written before model.safetensors, so a crash between the two
    left a folder that loaded (the shapes agree) and gave wrong codes. The folder is now written
    whole and swapped in by renames."""

    old, new = _tiny_depth(0), _tiny_depth(1)  # the same tensor shapes, other weights
    folder = tmp_path / "tok"
    old.save_pretrained(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def crash(*args, **kwargs):
        raise OSError("power cut while writing the weights")

    monkeypatch.setattr("safetensors.torch.save_file", crash)  # what saving calls
    with pytest.raises(OSError, match="power cut"):
        new.save_pretrained(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]  # no temporary folders left
    again = perceptok.AutoPerceptionTokenizer.from_pretrained(folder)
    assert torch_equal(again.encode(_depth_map()).ids, old.encode(_depth_map()).ids)


def test_a_crash_between_the_renames_leaves_the_previous_folder_findable(tmp_path, monkeypatch):
    """``replace_folder`` moves the old folder aside before moving the new one in; a crash between
    the two renames leaves no folder at the path, and ``replaced_folders`` finds the old one."""
    from perceptok.checkpoint import replace_folder, replaced_folders

    path = tmp_path / "checkpoint"
    path.mkdir()
    (path / "step").write_text("1")
    assert replaced_folders(path) == [path]
    finished = tmp_path / ".checkpoint.tmp"
    finished.mkdir()
    (finished / "step").write_text("2")
    real_replace, calls = os.replace, []

    def crash_on_second(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError("power cut between the renames")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second)
    with pytest.raises(OSError, match="power cut"):
        replace_folder(finished, path)
    monkeypatch.setattr(os, "replace", real_replace)
    assert not path.exists()
    found = replaced_folders(path)
    assert len(found) == 1 and (found[0] / "step").read_text() == "1"
    replace_folder(finished, path)
    assert replaced_folders(path)[0] == path and (path / "step").read_text() == "2"


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a, b)


def test_weights_of_another_save_are_refused(tmp_path):
    """config.json records a hash of the weights: weights from another save of the same shapes
    (here after a crash in a folder that holds other files, written file by file) are refused."""
    first, second = tmp_path / "a", tmp_path / "b"
    _tiny_depth(0).save_pretrained(first)
    _tiny_depth(1).save_pretrained(second)
    (first / "model.safetensors").write_bytes((second / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="hash differs"):
        perceptok.AutoPerceptionTokenizer.from_pretrained(first)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "notes.txt").write_text("the user's own file")
    _tiny_depth(0).save_pretrained(shared)  # a folder with other files: updated in place
    assert (shared / "notes.txt").read_text() == "the user's own file"
    assert json.loads((shared / "config.json").read_text())["weights_sha256"]
    perceptok.AutoPerceptionTokenizer.from_pretrained(shared)


@pytest.mark.parametrize("change", [dict(token_prefix=5), dict(width="128"), dict(width=-1), dict(grids="abc"),
                                    dict(grids=[[4, 4], [2]]), dict(fsq_levels=[16, 1]), dict(cell_size=None)])
def test_mistyped_config_fields_are_checkpoint_errors(tmp_path, change):
    """Issue 10: depth config fields were not type-checked on load (AttributeError, TypeError,
    RuntimeError or IndexError came out, or the folder loaded and failed later)."""
    _tiny_depth(0).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(change)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=next(iter(change))):
        perceptok.AutoPerceptionTokenizer.from_pretrained(tmp_path)
