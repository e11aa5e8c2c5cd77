"""The registry: duplicates refused, third-party modalities through entry points, presets,
``perceptok.load`` and the conformance suite on a weighted third-party tokenizer."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import perceptok
from conformance import TokenizerConformance
from perceptok import BoxTokenizer, CheckpointError, PerceptokError, register_tokenizer
from perceptok.registry import get_tokenizer_class, reload_entry_points

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def toy_installed(tmp_path_factory):
    """Install the toy modality as a distribution with a ``perceptok.tokenizers`` entry point."""
    site = tmp_path_factory.mktemp("site")
    dist = site / "toy_modality_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-modality-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[perceptok.tokenizers]\nscalar_codebook = toy_modality:ScalarCodebookTokenizer\n")
    sys.path.insert(0, str(site))
    sys.path.insert(0, str(TESTS))
    reload_entry_points()
    yield get_tokenizer_class("scalar_codebook")
    sys.path.remove(str(site))


def test_entry_point_modality_is_discovered(toy_installed):
    assert "scalar_codebook" in perceptok.list_tokenizers()
    assert toy_installed.__name__ == "ScalarCodebookTokenizer"
    assert toy_installed.tokenizer_type == "scalar_codebook"


class TestToyConformance(TokenizerConformance):
    garbage_text = "<SIG><S_x>"

    @pytest.fixture(autouse=True)
    def _installed(self, toy_installed):
        self.cls = toy_installed

    def make_tokenizer(self):
        return self.cls()

    def samples(self):
        return [torch.tensor([0.0, 0.1, 0.5, 1.0]), torch.tensor([0.9, 0.2, 0.3, 0.33])]

    def batch(self, samples):
        return torch.stack(samples)


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_tokenizer("boxes")(type("Other", (BoxTokenizer,), {}))
    with pytest.raises(ValueError, match="already registered"):
        perceptok.register_preset("boxes", lambda: BoxTokenizer())


def test_unknown_type_is_a_clear_error():
    with pytest.raises(PerceptokError, match="registered: .*boxes"):
        get_tokenizer_class("heatmap")


def test_load_presets_folders_and_unknown_names(tmp_path):
    assert perceptok.load("boxes").config.preset == "aurora"
    assert perceptok.load("points:kosmos2").config.bins == 32
    BoxTokenizer.from_preset("florence2").save_pretrained(tmp_path / "saved")
    assert perceptok.load(tmp_path / "saved").config.preset == "florence2"
    with pytest.raises(CheckpointError, match="Packaged presets: boxes"):
        perceptok.load("boxez")


def test_loading_as_the_wrong_class_is_refused(tmp_path):
    perceptok.load("points").save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="'points' tokenizer, not a 'boxes' one"):
        BoxTokenizer.from_pretrained(tmp_path)
