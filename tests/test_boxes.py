"""BoxTokenizer: conformance for every preset, hand-worked known answers, inputs, bad input,
and round trips on the real boxes of boxes/voc100."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision import tv_tensors

from conformance import CoordinateConformance
from perceptok import PAD_ID, BoxTokenizer, TokenParseError
from perceptok.boxes import convert
from perceptok.coordinates import presets_for
from perceptok.coordinates.quantize import smart_resize

CANVAS = (240, 320)  # (H, W)


class BoxConformance(CoordinateConformance):
    preset = "aurora"
    encode_kwargs = {"canvas_size": CANVAS}
    decode_kwargs = {"canvas_size": CANVAS}

    def make_tokenizer(self):
        return BoxTokenizer.from_preset(self.preset)

    def samples(self):
        return [
            torch.tensor([[81.7, 37.9, 250.3, 199.6], [0.0, 0.0, 320.0, 240.0], [10.2, 200.5, 30.9, 239.0]]),
            np.array([[5.5, 6.5, 7.5, 9.5]]),
            [[100, 100, 101, 140], [33.3, 44.4, 55.5, 66.6]],
            torch.zeros(0, 4),
        ]


for _preset in presets_for("box"):
    globals()[f"TestBoxConformance_{_preset}"] = type(
        f"TestBoxConformance_{_preset}", (BoxConformance,), {"preset": _preset})


# Worked by hand. Canvas H=240, W=320; box x1=81.7, y1=37.9, x2=250.3, y2=199.6, i.e.
# normalised x1=0.2553125, y1=0.1579167, x2=0.7821875, y2=0.8316667.
# aurora    round(v·335):  85.53→86, 52.90→53, 262.03→262, 278.61→279 (x y x y)
# paligemma round(v·1023): y1 161.55→162, x1 261.18→261, y2 850.80→851, x2 800.18→800
# florence2 floor(v·1000): 255.3→255, 157.9→157, 782.2→782, 831.7→831
# kosmos2   32×32 cells: top-left col floor(8.17)=8, row floor(5.05)=5 → 5·32+8 = 168;
#           bottom-right col ceil(25.03−1)=25, row ceil(26.61−1)=26 → 26·32+25 = 857
# qwen2vl   round(v·1000): 255.3→255, 157.9→158, 782.2→782, 831.7→832
KNOWN_BOX = [81.7, 37.9, 250.3, 199.6]
KNOWN = {
    "aurora": "cat (<PIXEL_86>,<PIXEL_53>,<PIXEL_262>,<PIXEL_279>)",
    "paligemma": "<loc0162><loc0261><loc0851><loc0800> cat",
    "florence2": "cat<loc_255><loc_157><loc_782><loc_831>",
    "kosmos2": "<phrase>cat</phrase><object><patch_index_0168><patch_index_0857></object>",
    "qwen2vl": "<|object_ref_start|>cat<|object_ref_end|><|box_start|>(255,158),(782,832)<|box_end|>",
}
# Decoded x1 of each preset, by hand: aurora 86/335·320, paligemma 261/1023·320,
# florence2 (255+0.5)/1000·320, kosmos2 cell centre (8+0.5)/32·320, qwen2vl 255/1000·320.
KNOWN_X1 = {"aurora": 82.1493, "paligemma": 81.6422, "florence2": 81.76, "kosmos2": 85.0, "qwen2vl": 81.6}


@pytest.mark.parametrize("preset", sorted(KNOWN))
def test_known_answers(preset):
    tok = BoxTokenizer.from_preset(preset)
    enc = tok.encode([KNOWN_BOX], canvas_size=CANVAS, labels=["cat"])
    assert tok.to_text(enc) == KNOWN[preset]
    parsed = tok.parse(KNOWN[preset])
    assert parsed.labels == ["cat"] and torch.equal(parsed.ids, enc.ids)
    x1 = float(tok.decode(parsed.ids, canvas_size=CANVAS)[0, 0])
    assert x1 == pytest.approx(KNOWN_X1[preset], abs=1e-3)


def test_full_image_box_reaches_the_last_token():
    tok = BoxTokenizer.from_preset("aurora")
    assert tok.to_text(tok.encode([[0, 0, 336, 336]], canvas_size=(336, 336))) == \
        "(<PIXEL_0>,<PIXEL_0>,<PIXEL_335>,<PIXEL_335>)"
    assert tok.vocab_size == 336 and tok.vocab[0] == "<PIXEL_0>" and tok.vocab[-1] == "<PIXEL_335>"
    assert BoxTokenizer.from_preset("paligemma").vocab[-1] == "<loc1023>"
    assert BoxTokenizer.from_preset("florence2").vocab[-1] == "<loc_999>"
    assert BoxTokenizer.from_preset("kosmos2").vocab_size == 1024
    assert BoxTokenizer.from_preset("qwen2vl").vocab[-1] == "1000"


def test_several_labelled_boxes_in_each_layout():
    boxes = [[10, 20, 100, 200], [150, 30, 300, 230], [5, 5, 15, 15]]
    labels = ["mug", "potted plant", None]
    for preset in presets_for("box"):
        tok = BoxTokenizer.from_preset(preset)
        enc = tok.encode(boxes, canvas_size=CANVAS, labels=labels)
        parsed = tok.parse(tok.to_text(enc))
        assert parsed.labels == labels, preset
        assert int(parsed.counts) == 3


@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "cxcywh"])
def test_formats_and_bounding_boxes_agree(fmt):
    tok = BoxTokenizer.from_preset("florence2")
    xyxy = torch.tensor([[81.7, 37.9, 250.3, 199.6], [1.0, 2.0, 3.0, 4.0]])
    reference = tok.encode(xyxy, canvas_size=CANVAS).ids
    converted = tv_tensors.BoundingBoxes(xyxy, format="XYXY", canvas_size=CANVAS)
    from torchvision.ops import box_convert
    raw = box_convert(xyxy, "xyxy", fmt)
    assert torch.equal(tok.encode(raw, canvas_size=CANVAS, format=fmt).ids, reference)
    bb = tv_tensors.BoundingBoxes(raw, format=fmt.upper(), canvas_size=CANVAS)
    assert torch.equal(tok.encode(bb).ids, reference)
    assert torch.equal(tok.encode(converted).ids, reference)
    back = tok.decode(reference, canvas_size=CANVAS, format=fmt)
    assert torch.allclose(back, raw, atol=0.5 * 320 / 1000 * 2 + 1e-4)


def test_normalised_input_without_canvas():
    tok = BoxTokenizer.from_preset("aurora")
    norm = tok.encode([[0.25, 0.5, 0.75, 1.0]]).ids
    pixels = tok.encode([[80, 120, 240, 240]], canvas_size=CANVAS).ids
    assert torch.equal(norm, pixels)
    with pytest.raises(ValueError, match="canvas_size"):
        tok.encode([[80, 120, 240, 240]])


def test_ragged_batch_with_per_image_canvas_and_labels():
    tok = BoxTokenizer.from_preset("aurora")
    enc = tok.encode([[[0, 0, 10, 10]], [], [[1, 1, 5, 5], [2, 2, 9, 9]]],
                     canvas_size=[(10, 10), (20, 20), (10, 10)], labels=[["a"], [], ["b", "c"]])
    assert enc.ids.shape == (3, 2, 4) and enc.counts.tolist() == [1, 0, 2]
    assert (enc.ids[0, 1] == PAD_ID).all() and (enc.ids[1] == PAD_ID).all()
    texts = tok.to_text(enc)
    assert texts[1] == "" and texts[2].startswith("b (")
    decoded = tok.decode(enc.ids, canvas_size=[(10, 10), (20, 20), (10, 10)])
    assert [len(d) for d in decoded] == [1, 0, 2]


@pytest.mark.parametrize("bad, match", [
    ([[10, 10, 5, 20]], "inverted or empty"),
    ([[10, 10, 10, 20]], "inverted or empty"),
    ([[float("nan"), 0, 5, 5]], "NaN"),
    ([[0, 0, float("inf"), 5]], "NaN or infinite"),
    ([[0, 0, 400, 5]], "outside the 240×320"),
    ([[-3, 0, 40, 5]], "clip=True"),
    ([[1, 2, 3]], r"shape \(N, 4\)"),
    ([1, 2, 3, 4], r"shape \(N, 4\)"),
    ("boxes", "numbers"),
])
def test_bad_boxes_raise_clear_errors(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        BoxTokenizer.from_preset("aurora").encode(bad, canvas_size=CANVAS)


def test_a_bad_box_in_a_batch_is_named_by_image_and_index():
    """A batch is validated at once; the error still says which image and which of its boxes."""
    tok = BoxTokenizer.from_preset("aurora")
    good = [[0, 0, 10, 10]]
    with pytest.raises(ValueError, match=r"box 1 of image 2 \[5\.0, 5\.0, 4\.0, 9\.0\] \(as x1 y1 x2 y2\) is inverted"):
        tok.encode([good, [], good + [[5, 5, 4, 9]]], canvas_size=CANVAS)
    with pytest.raises(ValueError, match=r"box 0 of image 1 lies outside the 100×50 \(H×W\) image"):
        tok.encode([good, [[0, 0, 60, 10]]], canvas_size=[CANVAS, (100, 50)])
    with pytest.raises(ValueError, match=r"box 0 of image 0 has NaN"):
        tok.encode([[[0, float("nan"), 1, 1]]], canvas_size=[CANVAS])


def test_clip_on_request_and_outside_boxes_still_fail():
    tok = BoxTokenizer.from_preset("aurora")
    clipped = tok.encode([[-3, 0, 400, 240]], canvas_size=CANVAS, clip=True).ids
    assert clipped.tolist() == [[0, 0, 335, 335]]
    with pytest.raises(ValueError, match="clipping leaves it empty"):
        tok.encode([[330, 0, 400, 10]], canvas_size=CANVAS, clip=True)


def test_bad_labels_and_ids():
    tok = BoxTokenizer.from_preset("aurora")
    with pytest.raises(ValueError, match="labels"):
        tok.encode([[0, 0, 1, 1]], labels=["a", "b"])
    with pytest.raises(ValueError, match="cannot be written"):
        tok.encode([[0, 0, 1, 1]], labels=["a, b"])
    with pytest.raises(ValueError, match="0..335"):
        tok.to_text(torch.tensor([[0, 0, 336, 1]]))
    with pytest.raises(ValueError, match="integer ids"):
        tok.decode(torch.zeros(2, 3))


def test_strict_errors_point_at_the_offending_token():
    tok = BoxTokenizer.from_preset("aurora")
    text = "dog (<PIXEL_46>,<PIXEL_161>,<PIXEL_400>,<PIXEL_3>)"
    with pytest.raises(TokenParseError) as err:
        tok.from_text(text)
    assert err.value.position == text.index("<PIXEL_400>") and "<PIXEL_335>" in err.value.expected
    with pytest.raises(TokenParseError) as err:
        tok.from_text("dog (<PIXEL_46>,<PIXEL_161>")
    assert err.value.position == len("dog (<PIXEL_46>,<PIXEL_161>") and err.value.expected == "','"
    with pytest.raises(TokenParseError, match="<loc0001>"):
        BoxTokenizer.from_preset("paligemma").from_text("<loc1><loc0002><loc0003><loc0004>")
    lenient = tok.from_text("boxes: (<PIXEL_1>, <PIXEL_2>,<PIXEL_3>,<PIXEL_4>) and (<PIXEL_999>,<PIXEL_1>,<PIXEL_2>,<PIXEL_3>)",
                            strict=False)
    assert lenient.tolist() == [[1, 2, 3, 4]]


def test_convert_between_presets_keeps_labels_and_counts():
    src = BoxTokenizer.from_preset("aurora")
    text = src.to_text(src.encode([[10, 20, 100, 200], [150, 30, 300, 230]], canvas_size=CANVAS, labels=["a", "b"]))
    pali = convert(text, "aurora", "paligemma", canvas_size=CANVAS)
    assert pali.startswith("<loc") and pali.endswith(" b")
    back = convert(pali, "paligemma", "aurora", canvas_size=CANVAS)
    assert torch.allclose(src.from_text(back).float(), src.from_text(text).float(), atol=1)
    tiny = convert("(<PIXEL_10>,<PIXEL_10>,<PIXEL_11>,<PIXEL_11>)", "aurora", "kosmos2")
    assert int(BoxTokenizer.from_preset("kosmos2").parse(tiny).counts) == 1
    assert int(src.parse(convert(tiny, "kosmos2", "aurora")).counts) == 1


def half_bin(preset: str, h: int, w: int) -> torch.Tensor:
    """Largest round-trip error of x1, y1, x2, y2 in pixels of an h×w image: half a bin, except
    Kosmos-2, whose reference decodes a box whose corners share a row or a column to the cells'
    edges (up to a whole cell off; see test_kosmos2_decodes_like_the_reference), and Qwen2.5-VL,
    whose bins are the pixels of the resized model input."""
    cfg = BoxTokenizer.from_preset(preset).config
    side = torch.tensor([w, h, w, h], dtype=torch.float64)
    if cfg.quantization == "grid":
        return side / cfg.bins
    if cfg.quantization == "pixel":
        rh, rw = smart_resize(h, w, *cfg.input_resize)
        return 0.5 * side / torch.tensor([rw, rh, rw, rh])
    return side * (0.5 / (cfg.bins - 1) if cfg.quantization == "round" else 0.5 / cfg.bins)


@pytest.mark.parametrize("preset", presets_for("box"))
def test_real_voc_boxes_round_trip_within_half_a_bin(preset, voc100):
    tok = BoxTokenizer.from_preset(preset)
    for image in voc100:
        h, w = image["canvas_size"]
        boxes = torch.tensor(image["boxes"], dtype=torch.float64)
        text = tok.to_text(tok.encode(boxes, canvas_size=(h, w), format="xywh", labels=image["labels"]))
        parsed = tok.parse(text)
        assert int(parsed.counts) == len(image["boxes"]) and parsed.labels == image["labels"]
        back = tok.decode(parsed.ids, canvas_size=(h, w), format="xywh").double()
        from torchvision.ops import box_convert
        err = (box_convert(back, "xywh", "xyxy") - box_convert(boxes, "xywh", "xyxy")).abs()
        limit = half_bin(preset, h, w) + 1e-3
        assert (err <= limit).all(), (image["file_name"], err.max())


@settings(max_examples=200, deadline=None)
@given(preset=st.sampled_from(presets_for("box")),
       corners=st.lists(st.floats(0, 1, allow_nan=False), min_size=4, max_size=4),
       h=st.integers(1, 4000), w=st.integers(1, 4000))
def test_round_trip_error_is_at_most_half_a_bin(preset, corners, h, w):
    x1, x2 = sorted(corners[:2])
    y1, y2 = sorted(corners[2:])
    if x2 - x1 < 1e-6 or y2 - y1 < 1e-6:
        return
    tok = BoxTokenizer.from_preset(preset)
    if tok.config.quantization == "pixel" and max(h, w) > 200 * min(h, w):
        return  # Qwen2.5-VL refuses such images
    box = torch.tensor([[x1 * w, y1 * h, x2 * w, y2 * h]], dtype=torch.float64)
    back = tok.decode(tok.encode(box, canvas_size=(h, w)).ids, canvas_size=(h, w)).double()
    limit = half_bin(preset, h, w) * (1 + 1e-6) + 1e-3
    assert ((back - box).abs() <= limit).all()


def _kosmos2_reference(ul_idx: int, lr_idx: int, n: int) -> tuple[float, float, float, float]:
    """patch_index_to_coordinate of microsoft/unilm kosmos-2/demo/decode_string.py (commit
    97e4923e, lines 35-75), as transformers' Kosmos2Processor copies it; written out here from
    the reference so the test checks the library against it."""
    cell = 1.0 / n
    ul_x, ul_y, lr_x, lr_y = ul_idx % n, ul_idx // n, lr_idx % n, lr_idx // n
    if ul_idx == lr_idx or ul_x == lr_x or ul_y == lr_y:
        return ul_x * cell, ul_y * cell, lr_x * cell + cell, lr_y * cell + cell
    return ul_x * cell + cell / 2, ul_y * cell + cell / 2, lr_x * cell + cell / 2, lr_y * cell + cell / 2


def test_kosmos2_decodes_like_the_reference():
    """Issue 13 (9): (0.10, 0.10, 0.60, 0.12) came back with zero height (both corners in one
    row, decoded to the row's centre); the reference spans the row's edges."""
    tok = BoxTokenizer.from_preset("kosmos2")
    g = torch.Generator().manual_seed(0)
    ul = torch.randint(0, 1024, (2000,), generator=g)
    lr = torch.randint(0, 1024, (2000,), generator=g)
    ul[:50], lr[:50] = lr[:50], lr[:50]  # one cell
    lr[50:100] = ul[50:100] // 32 * 32 + lr[50:100] % 32  # one row
    ids = torch.stack([ul, lr], 1)
    got = tok.decode(ids, canvas_size=(1, 1))
    expected = torch.tensor([_kosmos2_reference(int(a), int(b), 32) for a, b in zip(ul, lr)], dtype=got.dtype)
    assert torch.allclose(got, expected, atol=1e-9)
    box = tok.decode(tok.encode([[0.10, 0.10, 0.60, 0.12]], canvas_size=(1, 1)).ids, canvas_size=(1, 1))[0]
    assert box.tolist() == pytest.approx([3 / 32, 3 / 32, 20 / 32, 4 / 32])  # cells 3..19 × row 3, edges
