"""Benchmark scoring of the LLaVA plugin on the real prompt formats of samples.jsonl."""

from __future__ import annotations

import json

import pytest

from perceptok_llava.cli import main
from perceptok_llava.eval import choices_of, extract_letter, extract_number, score

DEPTH = "<DEPTH_START>" + "<DEPTH_7>" * 100 + "<DEPTH_END>"


def samples(shared_data, benchmark: str) -> list[dict]:
    lines = (shared_data / "benchmarks" / "samples.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["benchmark"] == benchmark]


@pytest.mark.parametrize("text, letter", [
    ("(B)", "B"), ("B", "B"), ("The answer is B.", "B"), ("Answer: (A)", "A"), ("B is closer", "B"),
    (f"Point A is at (<PIXEL_10>,<PIXEL_20>). {DEPTH} Therefore, point B is closer.", "B"),
    ("A is closer than B? No. B is closer.", "B"), ("I think A.", None), ("I cannot tell.", None),
])
def test_letters_from_free_text(text, letter):
    assert extract_letter(text, "AB", {"A": "A is closer", "B": "B is closer"}) == letter


def test_choice_texts_and_numbers():
    choices = choices_of("How many towels are in the image?\nA. One\nB. Two\nC. Three\nD. Four\nAnswer with the option's letter")
    assert choices == {"A": "One", "B": "Two", "C": "Three", "D": "Four"}
    assert extract_letter("There are two towels.", "ABCD", choices) == "B"
    counts = choices_of("How many wine glasss are in the image? Select from the following choices.\n(A) 0\n(B) 3\n(C) 2\n(D) 1")
    assert extract_letter("I count 3 wine glasses", "ABCD", counts) == "B"
    assert extract_letter("there are three", "ABCD", counts) == "B"
    assert extract_number("boxes: (<PIXEL_1>,<PIXEL_2>,<PIXEL_3>,<PIXEL_4>) so 2 mugs") == 2
    assert extract_number("eleven") == 11 and extract_number("none here") is None


def test_blink_depth_samples(shared_data):
    records = samples(shared_data, "BLINK/Relative_Depth")
    preds = ["(B)", "B is closer", f"{DEPTH} The answer is (B).", "A", "Point A is closer.", "no idea"]
    result = score("blink-depth", [{**r, "prediction": p} for r, p in zip(records, preds)])
    assert result["n"] == 6 and result["correct"] == 5 and result["accuracy"] == pytest.approx(5 / 6)
    assert result["unparseable"] == ["val_Relative_Depth_6"]


def test_counting_benchmarks(shared_data):
    seed = samples(shared_data, "SEED-Bench/Instances_Counting")[0]
    assert score("seed-count", [{**seed, "prediction": "A"}])["accuracy"] == 1.0
    assert score("seed-count", [{**seed, "prediction": "There is one towel."}])["accuracy"] == 1.0
    cv = samples(shared_data, "CV-Bench/Count")[0]
    assert score("cvbench-count", [{**cv, "prediction": "(D) 1"}])["accuracy"] == 1.0
    assert score("cvbench-count", [{**cv, "prediction": "I see 2 glasses"}])["accuracy"] == 0.0
    assert score("blink-count", [{"id": "x", "answer": "3", "prediction": "three floats"}])["accuracy"] == 1.0


def test_hardblink_letters_a_to_e():
    records = [{"id": "h1", "answer": "(E)", "prediction": "Point E is the closest to the camera."},
               {"id": "h2", "answer": "(C)", "prediction": "C"}]
    assert score("hardblink", records)["accuracy"] == 1.0


def test_bad_records_and_cli(tmp_path, capsys):
    with pytest.raises(ValueError, match="lacks"):
        score("blink-depth", [{"id": "a", "answer": "(A)"}])
    with pytest.raises(ValueError, match="unknown benchmark"):
        score("mmlu", [])
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "a", "answer": "(A)", "prediction": "A is closer"}) + "\n")
    assert main(["eval", "--benchmark", "blink-depth", "--predictions", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == 1.0
    path.write_text("nope\n")
    assert main(["eval", "--benchmark", "blink-depth", "--predictions", str(path)]) == 2
    assert "not a JSON object" in capsys.readouterr().err


def test_train_fails_fast_when_the_hub_is_out_of_reach(monkeypatch, capsys, tmp_path):
    """Issue 10 (1): offline, `perceptok-llava train` retried for 57 s before failing. With the
    Hub unreachable, a model that is neither a folder nor cached is an error at once, and a
    cached one is used offline."""
    import socket

    from perceptok_llava import cli

    def unreachable(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda repo, name, **kw: None)
    assert main(["train", "--model", "acme/not-cached-llava", "--data", "synthetic:2", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of reach" in err and "acme/not-cached-llava" in err
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda repo, name, **kw: "/cache/config.json")
    cli.hub_reachable_or_cached("acme/cached-llava")
    assert "using the cached acme/cached-llava" in capsys.readouterr().err
    assert __import__("os").environ["HF_HUB_OFFLINE"] == "1"
    monkeypatch.delenv("HF_HUB_OFFLINE")
    cli.hub_reachable_or_cached(str(tmp_path))  # a local folder never needs the Hub
