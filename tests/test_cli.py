"""The ``perceptok`` command line: real work in-process, and user mistakes as one line + exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from perceptok.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list(capsys):
    code, out, _ = run(capsys, "list", "--json")
    listed = json.loads(out)
    assert code == 0 and {"boxes", "points"} <= set(listed["tokenizers"]) and "boxes:paligemma" in listed["presets"]


def test_encode_decode_boxes_round_trip(capsys):
    code, text, _ = run(capsys, "encode", "boxes", "[[81.7, 37.9, 250.3, 199.6]]", "--canvas-size", "240", "320",
                        "--labels", "cat", "--preset", "paligemma")
    assert code == 0 and text.strip() == "<loc0162><loc0261><loc0851><loc0800> cat"
    code, out, _ = run(capsys, "decode", "boxes", text.strip(), "--canvas-size", "240", "320", "--preset", "paligemma")
    decoded = json.loads(out)
    assert decoded["count"] == 1 and decoded["labels"] == ["cat"]
    assert decoded["boxes"][0] == pytest.approx([81.7, 37.9, 250.3, 199.6], abs=0.5 * 320 / 1023 + 1e-3)


def test_encode_points_and_lenient_decode(capsys):
    code, text, _ = run(capsys, "encode", "points", "[[10, 20]]", "--canvas-size", "240", "320")
    assert code == 0 and text.strip() == "(<PIXEL_10>,<PIXEL_28>)"
    code, out, _ = run(capsys, "decode", "points", "I think (<PIXEL_10>,<PIXEL_28>) is it", "--lenient")
    assert code == 0 and json.loads(out)["count"] == 1


def test_encode_real_coco_boxes(capsys, shared_data):
    coco = shared_data / "boxes" / "voc100" / "instances.json"
    code, out, _ = run(capsys, "encode", "boxes", "--coco", str(coco), "--image", "2007_000032.jpg")
    assert code == 0 and out.count("(<PIXEL_") == 4 and "aeroplane" in out and "person" in out


def test_info_of_saved_folder(capsys, tmp_path):
    from perceptok import load
    load("points:florence2").save_pretrained(tmp_path)
    code, out, _ = run(capsys, "info", str(tmp_path))
    info = json.loads(out)
    assert code == 0 and info["tokenizer_type"] == "points" and info["vocab_size"] == 1000


@pytest.mark.parametrize("argv, message", [
    (["encode", "boxes", "[[10, 10, 5, 20]]", "--canvas-size", "100", "100"], "inverted"),
    (["encode", "boxes", "not json"], "JSON list"),
    (["decode", "boxes", "(<PIXEL_1>,<PIXEL_2>"], "character 20"),
    (["info", "no/such-repo-anywhere"], "not in the local Hugging Face cache"),
    (["info", "./missing-folder"], "neither an existing folder"),
])
def test_user_mistakes_are_one_line_and_exit_2(capsys, argv, message, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.startswith("perceptok: error:") and message in err
    assert len(err.strip().splitlines()) == 1


def test_installed_entry_point_prints_no_traceback():
    out = subprocess.run([sys.executable, "-m", "perceptok.cli.main", "encode", "boxes", "[[1, 2, 3]]"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "shape (N, 4)" in out.stderr


def test_preview_draws_boxes_on_the_real_image(capsys, shared_data, tmp_path):
    from PIL import Image

    coco = shared_data / "boxes" / "voc100" / "instances.json"
    out = tmp_path / "preview.png"
    code, _, err = run(capsys, "encode", "boxes", "--coco", str(coco), "--image", "2007_000032.jpg",
                       "--preset", "kosmos2", "--preview", str(out))
    assert code == 0 and "preview written" in err
    original = Image.open(shared_data / "boxes" / "voc100" / "images" / "2007_000032.jpg")
    drawn = Image.open(out)
    assert drawn.size == original.size
    assert drawn.convert("RGB").tobytes() != original.convert("RGB").tobytes()


def test_lenient_decoding_warns_about_what_it_dropped_or_filled(tmp_path, capsys):
    """Issue 10 (4): --lenient says what was wrong and what it did, on standard error."""
    text = "(<PIXEL_1>,<PIXEL_2>,<PIXEL_3>,<PIXEL_4>), (<PIXEL_1>,<PIXEL_2>,<PIXEL_999>,<PIXEL_4>)"
    assert main(["decode", "boxes", text, "--lenient"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["count"] == 1
    assert "warning" in err and "<PIXEL_335>" in err and "dropped the rest" in err
    assert main(["decode", "depth", "<DEPTH_START><DEPTH_1><DEPTH_2><DEPTH_END>", "--lenient",
                 "--out", str(tmp_path / "d.npy")]) == 0
    err = capsys.readouterr().err
    assert "code 3 of 100" in err and "repeat the last" in err
    good = "(<PIXEL_1>,<PIXEL_2>,<PIXEL_3>,<PIXEL_4>)"
    assert main(["decode", "boxes", good, "--lenient"]) == 0
    assert capsys.readouterr().err == ""  # well-formed text: nothing to warn about


def test_help_and_light_commands_do_not_load_torch():
    """Issue 10 (2): torch and torchvision took 2.9 s of every call. ``--help``, ``list``
    (every type and preset) and ``info`` of a box or point preset import neither, and a box
    command imports torch but not torchvision or the depth networks' libraries (start-up times
    are in benchmarks/test_cli_startup.py, not asserted here)."""
    heavy = "print(sorted(m for m in ('torch', 'torchvision', 'vector_quantize_pytorch') if m in sys.modules)); "
    probe = ("import sys; from perceptok.cli.main import build_parser, main; build_parser(); " + heavy +
             "main(['list']); " + heavy + "main(['info', 'points:molmo']); " + heavy +
             "main(['encode', 'boxes', '[[1, 2, 30, 40]]', '--canvas-size', '100', '100']); " + heavy)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "[]"
    assert "depth:pooled" in out[2] and "points:molmo" in out[2] and out[3] == "[]"
    described = out.index("[]", 4)
    assert json.loads("\n".join(out[4:described]))["class"] == "PointTokenizer"
    assert out[-1] == "['torch']"


def test_info_of_every_box_and_point_preset_from_its_config_is_the_built_tokenizers():
    """``perceptok info`` describes box and point presets from their configs (no torch); that
    must be exactly what the built tokenizer says of itself, for every preset, and presets
    without such a description (depth) are built."""
    from perceptok.describe import describe
    from perceptok.loading import load
    from perceptok.registry import describe_preset, list_presets

    described = [name for name in list_presets() if describe_preset(name) is not None]
    assert {"boxes", "points", "boxes:gemini", "points:molmo"} <= set(described)
    for name in described:
        assert describe_preset(name) == describe(load(name)), name
    assert describe_preset("depth") is None
