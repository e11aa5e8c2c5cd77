"""The relative-depth experiment (``perceptok-llava experiment relative-depth``): a miniature end
to end through the command line (training lowers every arm's loss, answers are generated and
scored, results.json and the plot are written), and the properties that make its comparison
fair: every arm of a seed starts from the same weights and is asked about the same images,
points and answers; only the supervision differs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

pytest.importorskip("peft")

from perceptok import BoxTokenizer, PointTokenizer, load  # noqa: E402
from perceptok_llava.cli import main as llava_cli  # noqa: E402
from perceptok_llava.experiment import SIZES, summarise  # noqa: E402
from perceptok_llava.experiment.build import (language_tokenizer, llava_model, nearest_by_depth,  # noqa: E402
                                              question_sets)
from perceptok_llava.experiment.report import interval  # noqa: E402
from perceptok_llava.experiment.run import lowest_point  # noqa: E402


def test_miniature_end_to_end(tmp_path, shared_data, capsys):
    out = tmp_path / "exp"
    code = llava_cli(["experiment", "relative-depth", "--out", str(out), "--size", "tiny", "--seeds", "2",
                      "--steps", "24", "--arms", "direct,cot", "--quiet",
                      "--test-manifest", str(shared_data / "depth" / "manifest.jsonl")])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert [(r["arm"], r["seed"]) for r in results["runs"]] == [("direct", 0), ("cot", 0), ("direct", 1), ("cot", 1)]
    counts = results["test_sets"]
    assert counts["synthetic"] == {"2": 2, "3": 2, "4": 2, "5": 2}
    assert set(counts["manifest"]) == {"2", "3", "4", "5"}
    for run in results["runs"]:
        assert len(run["losses"]) == 24
        assert run["last_loss"] < run["first_loss"], run["arm"]  # training learns something
        for test, per_k in run["tests"].items():
            assert {k: e["n"] for k, e in per_k.items()} == {k: n for k, n in counts[test].items()}
            for entry in per_k.values():
                assert 0 <= entry["accuracy"] <= 1 and entry["unparseable"] <= entry["n"]
                assert ("depth_read_accuracy" in entry) == (run["arm"] == "cot")
    # the summary is the mean over seeds of what the runs scored
    cot_2 = [r["tests"]["synthetic"]["2"]["accuracy"] for r in results["runs"] if r["arm"] == "cot"]
    assert results["summary"]["synthetic"]["arms"]["cot"]["2"]["accuracy"]["mean"] == pytest.approx(np.mean(cot_2))
    assert results["summary"]["synthetic"]["chance"]["3"] == pytest.approx(1 / 3)
    # a true map through the tokenizer's own tokens answers almost every synthetic question
    assert results["oracle"]["depth"]["synthetic"]["2"] >= 0.5
    printed = capsys.readouterr().out
    assert "| cot: read off its depth map |" in printed and "| chance |" in printed
    png = (out / "accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_arms_see_the_same_images_points_and_answers():
    size = SIZES["tiny"]
    points, boxes = PointTokenizer.from_preset("aurora"), BoxTokenizer.from_preset("aurora")
    vq = question_sets(size, {"depth": load("depth"), "boxes": boxes, "points": points})
    pooled = question_sets(size, {"depth": load("depth:pooled"), "boxes": boxes, "points": points})
    for a, b in zip(vq.train + vq.tests["synthetic"], pooled.train + pooled.tests["synthetic"], strict=True):
        assert (a["id"], a["task"], a.get("answer"), a.get("points")) == (b["id"], b["task"], b.get("answer"), b.get("points"))
        assert np.array_equal(np.asarray(a["image"].load()), np.asarray(b["image"].load()))
    # the direct and chain-of-thought questions of one scene share its marked image and answer
    by_scene = {}
    for r in vq.train:
        if r["task"] != "depth_generation":
            by_scene.setdefault(r["id"].split("/")[0], []).append(r)
    pairs = [rs for rs in by_scene.values() if len(rs) == 2]
    assert pairs
    for direct, cot in pairs:
        assert direct["answer"] == cot["answer"] and direct["image"] is cot["image"]
        assert cot["target"].endswith(direct["answer"]) and "<DEPTH_START>" in cot["target"]
    # disjoint scenes for training and testing
    assert not {r["id"].split("/")[0] for r in vq.train} & {r["id"].split("/")[0] for r in vq.tests["synthetic"]}


def test_every_arm_of_a_seed_starts_from_the_same_weights():
    size = SIZES["tiny"]
    lm_tok = language_tokenizer(["USER: <image> Which point is closer? ASSISTANT: (A)"] * 4)
    a = llava_model(size, copy.deepcopy(lm_tok), seed=3).state_dict()
    b = llava_model(size, copy.deepcopy(lm_tok), seed=3).state_dict()
    c = llava_model(size, copy.deepcopy(lm_tok), seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert lm_tok.decode(lm_tok(" (A) is closer")["input_ids"]) == " (A) is closer"  # text reads back as written


def test_reading_answers_and_intervals():
    depth = torch.zeros(10, 20)
    depth[7, 3] = 0.9  # relative inverse depth: larger is nearer
    depth[2, 15] = 0.4
    assert nearest_by_depth(depth, [[15, 2], [3, 7]], "AB") == "B"
    assert nearest_by_depth(depth, [[3.4, 6.6], [15, 2]], "AB") == "A"  # rounded to the pixel
    records = [{"task": "relative_depth_direct", "letters": "AB", "points": [[5, 30], [9, 10]], "answer": "(A)"},
               {"task": "relative_depth_direct", "letters": "ABC", "points": [[5, 3], [9, 10], [1, 2]], "answer": "(C)"},
               {"task": "relative_depth_cot", "letters": "AB", "points": [[5, 3], [9, 10]], "answer": "(A)"}]
    assert lowest_point(records) == {"2": 1.0, "3": 0.0, "all": 0.5}
    two = interval([0.5, 0.7])
    assert two["mean"] == pytest.approx(0.6)
    assert two["ci95"] == pytest.approx(12.706 * np.std([0.5, 0.7], ddof=1) / np.sqrt(2))
    assert interval([0.4])["ci95"] is None


def test_summary_weights_point_counts_by_questions():
    results = {"test_sets": {"t": {"2": 3, "4": 1}}, "arms": {"direct": {}},
               "runs": [{"arm": "direct", "tests": {"t": {"2": {"accuracy": 1.0, "n": 3}, "4": {"accuracy": 0.0, "n": 1}}}}]}
    table = summarise(results)["t"]
    assert table["arms"]["direct"]["all"]["accuracy"]["mean"] == pytest.approx(0.75)
    assert table["chance"]["all"] == pytest.approx((3 / 2 + 1 / 4) / 4)


def test_bad_arguments_are_one_line(tmp_path, capsys):
    code = llava_cli(["experiment", "relative-depth", "--out", str(tmp_path), "--arms", "direct,guess"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "guess" in err and "cot-pooled" in err
    code = llava_cli(["experiment", "relative-depth", "--out", str(tmp_path), "--steps", "0"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "steps must be positive" in err
