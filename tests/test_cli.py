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


def test_help_list_info_and_box_commands_do_not_load_torch(tmp_path):
    """Issue 10 (2): torch and torchvision took 2.9 s of every call. ``--help``, ``list``,
    ``info`` (of box, point and depth presets and of saved folders) and the box and point
    commands (also with a saved tokenizer folder) import neither torch nor the depth networks'
    libraries, and still give the right answers (start-up times are in
    benchmarks/test_cli_startup.py, not asserted here)."""
    from perceptok.boxes import BoxTokenizer

    saved = BoxTokenizer.from_preset("florence2").save_pretrained(tmp_path / "florence2-boxes")
    calls = [["list"], ["info", "points:molmo"], ["info", "depth"], ["info", "depth:pooled"],
             ["info", "perceptok/pretrained/depth"],
             ["encode", "boxes", "[[1, 2, 30, 40]]", "--canvas-size", "100", "100", "--labels", "cat"],
             ["decode", "boxes", "(<PIXEL_1>,<PIXEL_2>,<PIXEL_30>,<PIXEL_40>)", "--canvas-size", "100", "100"],
             ["encode", "points", "[[0.5, 0.25]]", "--preset", "molmo"],
             ["decode", "points", "(<PIXEL_1>,<PIXEL_2>) (<PIXEL_3>,", "--lenient"],
             ["encode", "boxes", "[[0.1, 0.2, 0.5, 0.6]]", "--tokenizer", str(saved)]]
    probe = ("import json, sys; from perceptok.cli.main import build_parser, main; build_parser()\n"
             f"for argv in {calls!r}:\n"
             "    assert main(argv) == 0, argv\n"
             "    print('<<loaded>>', json.dumps(sorted(m for m in ('torch', 'torchvision', 'vector_quantize_pytorch') "
             "if m in sys.modules)))\n")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    parts = run.stdout.split("<<loaded>> ")
    loaded = [json.loads(p.split("\n", 1)[0]) for p in parts[1:]]
    printed = [parts[0]] + [p.split("\n", 1)[1] for p in parts[1:-1]]
    assert loaded == [[]] * len(calls)
    assert "depth:pooled" in printed[0] and "points:molmo" in printed[0]
    assert json.loads(printed[1])["class"] == "PointTokenizer"
    depth = json.loads(printed[2])
    assert depth["class"] == "DepthTokenizer" and depth["weights"] > 1_000_000 and depth["first_tokens"][0] == "<DEPTH_0>"
    pooled = json.loads(printed[3])
    assert pooled["class"] == "PooledDepthTokenizer" and pooled["weights"] == 0
    assert json.loads(printed[4]) == depth
    assert printed[5].strip() == "cat (<PIXEL_3>,<PIXEL_7>,<PIXEL_100>,<PIXEL_134>)"
    assert json.loads(printed[6])["count"] == 1
    assert printed[7].strip() == '<point x="50.0" y="25.0" alt=""></point>'
    assert json.loads(printed[8])["count"] == 1 and "not well formed" in run.stderr
    assert printed[9].strip() == "<loc_100><loc_200><loc_500><loc_600>"


def test_info_without_building_is_what_the_built_tokenizer_says(tmp_path):
    """``perceptok info`` describes depth presets and saved depth folders from config.json and
    the weights file's header (no torch); that must be exactly what the loaded tokenizer says of
    itself, for every preset and for saved depth tokenizers with non-default token strings."""
    import torch

    from perceptok.depth import DepthTokenizer, DepthTokenizerConfig, PooledDepthConfig, PooledDepthTokenizer
    from perceptok.describe import describe, describe_folder, describe_name
    from perceptok.loading import load
    from perceptok.registry import CONFIG_CLASSES, get_tokenizer_class, list_presets

    for name in list_presets():
        assert describe_name(name) == describe(load(name)), name
    torch.manual_seed(0)
    vqvae = DepthTokenizer(DepthTokenizerConfig(preset="custom", width=8, codebook_size=64, fsq_levels=(16, 4),
                                                token_prefix="D2", grids=((4, 4), (2, 8))))
    pooled = PooledDepthTokenizer(PooledDepthConfig(codebook_size=16, token_prefix="LEVEL"))
    for tok, name in ((vqvae, "vqvae"), (pooled, "pooled")):
        folder = tok.save_pretrained(tmp_path / name)
        described = describe_folder(folder)
        assert described == describe(load(folder)) == describe_name(str(folder))
        assert described["vocab_size"] == tok.config.codebook_size
        assert described["weights"] == sum(t.numel() for t in tok.state_tensors().values())
    assert describe_folder(tmp_path / "vqvae")["start_token"] == "<D2_START>"
    for tokenizer_type, (class_name, module, config_class) in CONFIG_CLASSES.items():
        cls = get_tokenizer_class(tokenizer_type)
        assert (cls.__name__, cls.config_class.__module__, cls.config_class.__name__) == (class_name, module, config_class)


def test_bench_boxes_and_points_text(capsys):
    """`perceptok bench boxes|points`: every chosen convention's to_text and strict from_text
    beside the per-item f-string loop (which the bench checks writes the same text); 300 images
    take the compiled kernels. Timings are printed, never asserted."""
    assert main(["bench", "boxes", "--images", "300", "--per-image", "2", "--rounds", "1",
                 "--presets", "aurora,qwen25vl,shikra", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["kind"], result["images"], result["per_image"]) == ("box", 300, 2)
    assert list(result["presets"]) == ["aurora", "qwen25vl", "shikra"]
    for t in result["presets"].values():
        assert min(t["loop_s"], t["to_text_s"], t["from_text_s"]) > 0
        assert t["to_text_vs_loop"] == pytest.approx(t["loop_s"] / t["to_text_s"])
    assert main(["bench", "points", "--images", "2", "--per-image", "1", "--rounds", "1", "--presets", "molmo"]) == 0
    out = capsys.readouterr().out
    assert "2 points (2 images × 1)" in out and out.count("molmo") == 1
    assert main(["bench", "boxes", "--presets", "nope"]) == 2
    assert "unknown box preset(s) ['nope']" in capsys.readouterr().err
