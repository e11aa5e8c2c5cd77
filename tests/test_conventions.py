"""Known answers of the conventions newer models use, each from its source (cited beside it),
the conversion matrix between every two box conventions, and the batch text paths."""

from __future__ import annotations

import itertools
import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
from torchvision.ops import box_convert

from perceptok import PAD_ID, BoxTokenizer, PointTokenizer, TokenParseError
from perceptok.boxes import convert
from perceptok.coordinates import presets_for
from perceptok.coordinates.quantize import smart_resize
from perceptok.points import convert as convert_points
from test_boxes import half_bin

# --- Qwen2.5-VL and Qwen3-VL ------------------------------------------------------------------
# QwenLM/Qwen3-VL qwen-vl-finetune/GROUNDING_DATA_FORMAT.md: training answers, verbatim.
QWEN_BOX = '{"bbox_2d": [135, 114, 1016, 672], "label": "house"}'
QWEN_POINTS = '[{"point_2d": [346, 328], "label": "person"}, {"point_2d": [238, 158], "label": "person"}]'


def _reference_smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 4 * 28 * 28,
                            max_pixels: int = 16384 * 28 * 28) -> tuple[int, int]:
    """qwen_vl_utils vision_process.smart_resize (round/floor/ceil_by_factor), written out from
    the reference so the test checks the library against it."""
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@pytest.mark.parametrize("size", [(480, 640), (1080, 1920), (20, 30), (7000, 9000), (3, 500)])
def test_smart_resize_matches_the_reference(size):
    assert smart_resize(*size, 28, 4 * 28 * 28, 16384 * 28 * 28) == _reference_smart_resize(*size)
    assert smart_resize(480, 640, 28, 3136, 12845056) == (476, 644)  # by hand: 17·28, 23·28


def test_smart_resize_refuses_extreme_aspect_ratios():
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 2001, 28, 3136, 12845056)


def test_qwen25vl_reads_the_documented_answers_in_resized_pixels():
    tok = BoxTokenizer.from_preset("qwen25vl")
    parsed = tok.parse(QWEN_BOX)  # one object, bare, as the model answers it
    assert parsed.ids.tolist() == [[135, 114, 1016, 672]] and parsed.labels == ["house"]
    # An image the processor keeps at its size (sides multiples of 28): pixels come back as written.
    assert tok.decode(parsed.ids, canvas_size=(700, 1036)).tolist() == [[135.0, 114.0, 1016.0, 672.0]]
    # A 1080p photo is resized to 1092×1932: coordinates scale by the original / resized sides.
    h, w = 1080, 1920
    rh, rw = _reference_smart_resize(h, w)
    expected = torch.tensor([[135 / rw * w, 114 / rh * h, 1016 / rw * w, 672 / rh * h]])
    assert torch.allclose(tok.decode(parsed.ids, canvas_size=(h, w)).double(), expected.double(), atol=1e-4)
    assert tok.to_text(tok.encode(expected, canvas_size=(h, w), labels=["house"])) == f"[{QWEN_BOX}]"
    points = PointTokenizer.from_preset("qwen25vl")
    enc = points.parse(QWEN_POINTS)
    assert enc.ids.tolist() == [[346, 328], [238, 158]] and enc.labels == ["person", "person"]
    assert points.to_text(enc) == QWEN_POINTS


def test_qwen3vl_writes_thousandths_of_the_image():
    tok = BoxTokenizer.from_preset("qwen3vl")
    # By hand on a 640×428 image: 468/640·1000 = 731.25, 117/428·1000 = 273.4.
    text = tok.to_text(tok.encode([[468, 0, 640, 117]], canvas_size=(428, 640), labels=["car"]))
    assert text == '[{"bbox_2d": [731, 0, 1000, 273], "label": "car"}]'
    assert json.loads(text) == [{"bbox_2d": [731, 0, 1000, 273], "label": "car"}]
    back = tok.decode(tok.parse(text).ids, canvas_size=(428, 640))
    assert back.tolist()[0] == pytest.approx([731 / 1000 * 640, 0.0, 640.0, 273 / 1000 * 428])


# --- Gemini -----------------------------------------------------------------------------------
# Gemini API docs (ai.google.dev/gemini-api/docs/image-understanding, "Object detection"):
# "[ymin, xmin, ymax, xmax] ... normalized to 0-1000"; the answer below is the example of
# gist vgrichina/54c0620ca16063a88fa44d8bf10dc94e (Gemini 3 Flash), with its descaling
# x · W / 1000, y · H / 1000 on a 1906×1360 screenshot.
GEMINI = '[{"box_2d": [6, 246, 386, 526], "label": "Apple logo"}, {"box_2d": [234, 649, 650, 863], "label": "Search button"}]'


def test_gemini_reads_y_first_thousandths():
    tok = BoxTokenizer.from_preset("gemini")
    parsed = tok.parse(GEMINI)
    assert parsed.labels == ["Apple logo", "Search button"]
    boxes = tok.decode(parsed.ids, canvas_size=(1360, 1906))
    sx, sy = 1906 / 1000, 1360 / 1000
    assert boxes[0].tolist() == pytest.approx([246 * sx, 6 * sy, 526 * sx, 386 * sy], abs=1e-3)
    assert boxes[1].tolist() == pytest.approx([649 * sx, 234 * sy, 863 * sx, 650 * sy], abs=1e-3)
    assert tok.to_text(parsed) == GEMINI
    points = PointTokenizer.from_preset("gemini")  # Gemini Robotics-ER: {"point": [y, x]}
    assert points.to_text(points.encode([[0.25, 0.75]], labels=["cup"])) == '[{"point": [750, 250], "label": "cup"}]'


# --- InternVL ---------------------------------------------------------------------------------
# OpenGVLab/InternVL internvl_chat/eval/refcoco/evaluate_grounding.py: the answer's first
# [[x1, y1, x2, y2]] by PATTERN, divided by 1000, times the image width and height.
INTERNVL_PATTERN = re.compile(r"\[*\[(.*?),(.*?),(.*?),(.*?)\]\]*")


def test_internvl_decodes_like_its_refcoco_evaluation():
    tok = BoxTokenizer.from_preset("internvl")
    answer = "<ref>the man on the left</ref><box>[[125, 261, 199, 312]]</box>"
    parsed = tok.parse(answer)
    assert parsed.labels == ["the man on the left"]
    h, w = 427, 640
    reference = torch.tensor([float(v) for v in INTERNVL_PATTERN.findall(answer)[0]]) / 1000
    reference[0::2] *= w
    reference[1::2] *= h
    assert torch.allclose(tok.decode(parsed.ids, canvas_size=(h, w))[0].double(), reference.double(), atol=1e-4)
    # Several boxes of one phrase share one <box> tag, as InternVL writes them.
    two = tok.encode([[0, 0, 320, 200], [320, 200, 640, 427]], canvas_size=(h, w), labels=["cat", "cat"])
    assert tok.to_text(two) == "<ref>cat</ref><box>[[0, 0, 500, 468], [500, 468, 1000, 1000]]</box>"
    with pytest.raises(ValueError, match="box items only"):
        PointTokenizer.from_preset("internvl")


# --- Shikra -----------------------------------------------------------------------------------
def _shikra_format_box(boxes: list[list[float]]) -> str:
    """shikras/shikra mllm/dataset/process_function/box_process_function.py PlainBoxFormatter
    .format_box with precision=3, written out from the reference."""
    return "[" + ";".join(",".join(f"{elem:.3f}" for elem in box) for box in boxes) + "]"


SHIKRA_PATTERN = re.compile(r"\[\d(?:\.\d*)?(?:,\d(?:\.\d*)?){3}(?:;\d(?:\.\d*)?(?:,\d(?:\.\d*)?){3})*\]")


def test_shikra_writes_what_its_formatter_writes():
    tok = BoxTokenizer.from_preset("shikra")
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        lo = torch.rand(3, 2, generator=g, dtype=torch.float64) * 0.5
        boxes = torch.cat([lo, lo + 0.01 + torch.rand(3, 2, generator=g, dtype=torch.float64) * 0.4], 1)
        text = tok.to_text(tok.encode(boxes))
        assert text == _shikra_format_box(boxes.tolist())
        assert SHIKRA_PATTERN.fullmatch(text)  # what Shikra's own extractor reads
    assert tok.parse("dog[0.100,0.200,0.300,0.400;0.500,0.600,0.700,0.800]").labels == ["dog", "dog"]
    points = PointTokenizer.from_preset("shikra")
    assert points.to_text(points.encode([[0.5, 0.25]])) == "[0.500,0.250]"


# --- Molmo ------------------------------------------------------------------------------------
# allenai Molmo's point formatter tests (olmo/preprocessing tests, LegacyPointFormatting
# .extract_points(text, image_w=360, image_h=640)): percent of the image, one decimal.
MOLMO_POINTS = ('<points x1="23.0" y1="17.7" x2="38.2" y2="24.1" x3="43.5" y3="5.0" x4="44.6" y4="13.8" '
                'x5="54.9" y5="20.4" x6="59.6" y6="7.7" x7="67.9" y7="12.3" x8="75.4" y8="25.0" x9="78.5" '
                'y9="7.7" x10="83.8" y10="20.3" x11="87.4" y11="12.5" x12="97.3" y12="17.3" '
                'alt="purple plates">purple plates</points>')
MOLMO_EXPECTED = [[82.8, 113.28], [137.52, 154.24], [156.6, 32.0], [160.56, 88.32], [197.64, 130.56],
                  [214.56, 49.28], [244.44, 78.72], [271.44, 160.0], [282.6, 49.28], [301.68, 129.92],
                  [314.64, 80.0], [350.28, 110.72]]


def test_molmo_reads_the_reference_points():
    tok = PointTokenizer.from_preset("molmo")
    parsed = tok.parse(MOLMO_POINTS)
    assert parsed.labels == ["purple plates"] * 12
    got = tok.decode(parsed.ids, canvas_size=(640, 360))
    assert torch.allclose(got.double(), torch.tensor(MOLMO_EXPECTED, dtype=torch.float64), atol=0.1)
    one = tok.to_text(tok.encode([[0.523, 0.61]], labels=["X"]))
    assert one == '<point x="52.3" y="61.0" alt="X">X</point>'  # Molmo's single-point form
    assert torch.equal(tok.parse(one).ids, tok.parse('<point x="52.3" y="61.0" alt="X">X</point>').ids)
    with pytest.raises(ValueError, match="point items only"):
        BoxTokenizer.from_preset("molmo")


# --- all conventions --------------------------------------------------------------------------
@pytest.mark.parametrize("src,dst", list(itertools.product(presets_for("box"), repeat=2)))
def test_conversion_matrix_keeps_labels_counts_and_places(src, dst, voc100):
    """Every box convention into every other, on real VOC boxes: labels and counts are kept and
    each coordinate moves by at most half a bin of each convention (a cell for Kosmos-2)."""
    images = [im for im in voc100 if len(im["boxes"]) > 1][:3]
    s, d = BoxTokenizer.from_preset(src), BoxTokenizer.from_preset(dst)
    for image in images:
        h, w = image["canvas_size"]
        boxes = box_convert(torch.tensor(image["boxes"], dtype=torch.float64), "xywh", "xyxy")
        text = s.to_text(s.encode(boxes, canvas_size=(h, w), labels=image["labels"]))
        out = convert(text, src, dst, canvas_size=(h, w))
        parsed = d.parse(out)
        assert parsed.labels == image["labels"] and int(parsed.counts) == len(boxes)
        before = s.decode(s.parse(text).ids, canvas_size=(h, w)).double()
        after = d.decode(parsed.ids, canvas_size=(h, w)).double()
        assert ((after - before).abs() <= half_bin(src, h, w) + half_bin(dst, h, w) + 1e-3).all()


def test_point_conversion_between_molmo_and_the_rest():
    text = '<point x="52.3" y="61.0" alt="cup">cup</point> <point x="10.0" y="90.0" alt="cup">cup</point>'
    for dst in presets_for("point"):
        out = convert_points(text, "molmo", dst, canvas_size=(480, 640))
        back = convert_points(out, dst, "molmo", canvas_size=(480, 640))
        parsed = PointTokenizer.from_preset("molmo").parse(back)
        assert parsed.labels == ["cup", "cup"], dst
        xy = PointTokenizer.from_preset("molmo").decode(parsed.ids).double()
        assert torch.allclose(xy, torch.tensor([[0.523, 0.61], [0.1, 0.9]], dtype=torch.float64), atol=0.04), dst


@pytest.mark.parametrize("preset", presets_for("box"))
def test_batch_text_paths_agree_with_single_texts(preset):
    """The batch reader and the table renderer give what the one-text parser and loop give,
    padding, empty images and labels included; a non-canonical batch still parses."""
    tok = BoxTokenizer.from_preset(preset)
    g = torch.Generator().manual_seed(1)
    lo = torch.rand(12, 2, generator=g, dtype=torch.float64) * 0.6
    boxes = torch.cat([lo, lo + 0.05 + torch.rand(12, 2, generator=g, dtype=torch.float64) * 0.3], 1)
    images = [boxes[:3], boxes[3:3], boxes[3:4], boxes[4:12]]
    enc = tok.encode(images, canvas_size=(480, 640))
    texts = tok.to_text(enc)
    assert texts == [tok.to_text(tok.encode(b, canvas_size=(480, 640)).ids) for b in images]
    assert tok._kernels.read(texts) is not None  # the batch path reads what to_text writes
    again = tok.parse(texts)
    assert torch.equal(again.ids, enc.ids) and again.counts.tolist() == [3, 0, 1, 8]
    assert again.ids[1].eq(PAD_ID).all()
    padded = [" " + t + "\n" for t in texts]  # not canonical, still strict: read one by one
    assert tok._kernels.read(padded) is None
    assert torch.equal(tok.from_text(padded), enc.ids)
    labels = [["a"] * 3, [], ["b"], ["c"] * 4 + ["d"] * 4]
    labelled = tok.to_text(tok.encode(images, canvas_size=(480, 640), labels=labels))
    assert tok.parse(labelled).labels == labels


@pytest.mark.parametrize("preset", presets_for("box"))
def test_batch_reader_declines_what_is_not_canonical(preset):
    """Moved digits, out-of-range or mis-spelled coordinates never pass the batch reader: it
    declines, and the strict parser then names the fault."""
    tok = BoxTokenizer.from_preset(preset)
    boxes = [[64, 96, 192, 192], [320, 240, 576, 456]]
    text = tok.to_text(tok.encode(boxes, canvas_size=(480, 640)))
    for other in (text + "é", "→" + text):  # one-byte and wider non-ASCII text: read one by one
        assert tok._kernels.read([text, other]) is None
    bad = [text + "1"]  # a stray digit after the text
    for start, end in [m.span() for m in re.finditer(r"\d+", text)][:3]:  # literal digits too (JSON's bbox_2d)
        bad += [
            text[:start] + "9" * 7 + text[end:],  # out of range
            text[:start] + "0" + text[start:],  # a leading zero, a wrong spelling
            text[:start] + text[end] + text[start:end] + text[end + 1 :],  # digits moved past a character
        ]
    for wrong in bad:
        assert tok._kernels.read([text, wrong]) is None
        with pytest.raises(TokenParseError):
            tok.from_text([text, wrong])


@settings(max_examples=400, deadline=None)
@given(preset=st.sampled_from(presets_for("box") + ["molmo"]),
       edits=st.lists(st.tuples(st.sampled_from(["insert", "delete", "replace"]), st.integers(0, 10**6),
                                st.sampled_from(list("0123456789,;. ()[]<>_\"xy="))), min_size=1, max_size=3))
def test_batch_reader_only_accepts_what_the_strict_parser_reads_alike(preset, edits):
    """Edited canonical text: whenever the batch reader accepts it, the one-text strict parser
    gives the same ids (and it never accepts text that parser refuses)."""
    cls = PointTokenizer if preset == "molmo" else BoxTokenizer
    tok = cls.from_preset(preset)
    items = [[64, 96], [320, 240]] if cls is PointTokenizer else [[64, 96, 192, 192], [320, 240, 576, 456]]
    text = tok.to_text(tok.encode(items, canvas_size=(480, 640)))
    for op, at, char in edits:
        at %= len(text) + (op == "insert")
        text = text[:at] + (char if op != "delete" else "") + text[at + (op != "insert"):]
    fast = tok._kernels.read([text])
    if fast is None:
        return
    ids, counts = fast
    assert torch.equal(torch.from_numpy(ids), tok.parse(text).ids)
    assert counts.tolist() == [len(ids)]


@pytest.mark.parametrize("preset", presets_for("box"))
def test_lenient_parsing_is_linear_on_runs_of_white_space(preset):
    """Issue 10: lenient parsing once backtracked polynomially on white space (florence2 took
    4.9 s on 100 spaces, aurora 8.8 s on 200). These inputs are 50× longer; with the old
    patterns they would not finish."""
    tok = BoxTokenizer.from_preset(preset)
    for text in (" " * 10_000, "Answer:" + "\n" * 6_000, "word " * 2_000):
        assert tok.parse(text, strict=False).ids.shape == (0, tok.tokens_per_item)


def test_lenient_plain_boxes_have_no_labels():
    """Issue 10: two plain aurora boxes came back with labels [None, ''], which to_text refused."""
    tok = BoxTokenizer.from_preset("aurora")
    text = "(<PIXEL_1>,<PIXEL_2>,<PIXEL_3>,<PIXEL_4>), (<PIXEL_5>,<PIXEL_6>,<PIXEL_7>,<PIXEL_8>)"
    parsed = tok.parse(text, strict=False)
    assert parsed.labels is None and tok.to_text(parsed) == text
    assert convert(text, "aurora", "qwen3vl", strict=False).count("bbox_2d") == 2


def test_without_numba_batches_are_written_from_tables_and_parsed_one_by_one(monkeypatch):
    """numba is a dependency, but a Python it does not support yet must still work: the kernels'
    import fails, and large batches take the table renderer and the one-text parser."""
    import sys

    from perceptok.coordinates import tokenizer as module

    monkeypatch.setitem(sys.modules, "perceptok.coordinates.kernels", None)  # `import` now raises
    monkeypatch.setattr(module, "COMPILED_FROM", 0)
    tok = BoxTokenizer.from_preset("aurora")
    assert tok._kernels is None
    ids = torch.tensor([[[1, 2, 3, 4], [5, 6, 7, 8]], [[9, 10, 11, 12], [PAD_ID] * 4]])
    texts = tok.to_text(ids)
    assert texts[1] == "(<PIXEL_9>,<PIXEL_10>,<PIXEL_11>,<PIXEL_12>)"
    assert torch.equal(tok.from_text(texts), ids)


@pytest.mark.parametrize("token_format, decimals", [("<x2_{}>", 0), ("<b{:04d}>", 0), ("[{}]", 2), ("{}", 1)])
def test_compiled_text_of_custom_token_formats(token_format, decimals, monkeypatch):
    """A digit inside the token's own text, zero-padded and decimal numbers, bare numbers: the
    compiled kernels write what the tables write and read it back; a zero-padded number written
    without its padding is declined, and the strict parser names it."""
    from perceptok.coordinates import tokenizer as module

    tok = BoxTokenizer.from_preset("aurora", token_format=token_format, decimals=decimals)
    ids = torch.randint(0, tok.config.num_tokens, (40, 3, 4), generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(module, "COMPILED_FROM", len(ids) + 1)
    tables = tok.to_text(ids)
    monkeypatch.setattr(module, "COMPILED_FROM", len(ids))
    assert tok._kernels is not None and tok.to_text(ids) == tables
    assert torch.equal(tok.from_text(tables), ids)
    if token_format == "<b{:04d}>":
        unpadded = tables[0].replace("<b0", "<b", 1)
        assert tok._kernels.read([unpadded]) is None
        with pytest.raises(TokenParseError):
            tok.from_text([unpadded] + tables[1:])


def test_compiled_text_that_disagrees_with_the_tables_is_switched_off(monkeypatch):
    """The kernels prove themselves against the table renderer on first use (where they also
    compile); a disagreement, or a failure to compile, switches them off with a warning and
    costs no result."""
    from perceptok.coordinates import tokenizer as module
    from perceptok.coordinates.kernels import TextKernels

    monkeypatch.setattr(module, "COMPILED_FROM", 0)
    monkeypatch.setattr(TextKernels, "write", lambda self, rows, pad: ["wrong"] * len(rows))
    tok = BoxTokenizer.from_preset("qwen25vl")
    ids = torch.tensor([[[1, 2, 3, 4]], [[5, 6, 7, 8]]])
    with pytest.warns(RuntimeWarning, match="compiled box and point text is off"):
        texts = tok.to_text(ids)
    assert texts[0] == '[{"bbox_2d": [1, 2, 3, 4]}]' and tok._kernels is None
    assert torch.equal(tok.from_text(texts), ids)
