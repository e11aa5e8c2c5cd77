"""PointTokenizer: conformance for every preset, known answers, bad input."""

from __future__ import annotations

import pytest
import torch

from conformance import CoordinateConformance
from perceptok import PointTokenizer
from perceptok.coordinates import presets_for

CANVAS = (240, 320)


class PointConformance(CoordinateConformance):
    preset = "aurora"
    encode_kwargs = {"canvas_size": CANVAS}
    decode_kwargs = {"canvas_size": CANVAS}

    def make_tokenizer(self):
        return PointTokenizer.from_preset(self.preset)

    def samples(self):
        return [torch.tensor([[81.7, 37.9], [320.0, 240.0], [0.0, 0.0]]), [[160.5, 120.5]], torch.zeros(0, 2)]


for _preset in presets_for("point"):
    globals()[f"TestPointConformance_{_preset}"] = type(
        f"TestPointConformance_{_preset}", (PointConformance,), {"preset": _preset})

# The top-left corner of the box worked by hand in test_boxes.py: x=81.7, y=37.9 on 240×320.
KNOWN = {
    "aurora": "(<PIXEL_86>,<PIXEL_53>)",
    "paligemma": "<loc0162><loc0261>",
    "florence2": "<loc_255><loc_157>",
    "kosmos2": "<object><patch_index_0168></object>",
    "qwen2vl": "<|box_start|>(255,158)<|box_end|>",
}


@pytest.mark.parametrize("preset", sorted(KNOWN))
def test_known_answers(preset):
    tok = PointTokenizer.from_preset(preset)
    assert tok.to_text(tok.encode([[81.7, 37.9]], canvas_size=CANVAS)) == KNOWN[preset]


def test_marked_points_with_letters_round_trip():
    tok = PointTokenizer.from_preset("aurora")
    enc = tok.encode([[10, 20], [300, 200]], canvas_size=CANVAS, labels=["A", "B"])
    text = tok.to_text(enc)
    assert text == "A (<PIXEL_10>,<PIXEL_28>), B (<PIXEL_314>,<PIXEL_279>)"
    back = tok.decode(tok.parse(text).ids, canvas_size=CANVAS)
    assert (back - torch.tensor([[10.0, 20.0], [300.0, 200.0]])).abs().max() <= 0.5 * 320 / 335 + 1e-4


@pytest.mark.parametrize("bad, match", [
    ([[1, float("nan")]], "NaN"),
    ([[400, 1]], "outside"),
    ([[1, 2, 3]], r"shape \(N, 2\)"),
])
def test_bad_points(bad, match):
    with pytest.raises(ValueError, match=match):
        PointTokenizer.from_preset("aurora").encode(bad, canvas_size=CANVAS)
