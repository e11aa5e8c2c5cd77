"""Hub I/O: push_to_hub with HfApi patched (no network here), and Hub ids loaded from a
pre-seeded local cache with HF_HUB_OFFLINE=1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import HfApi
import torch
from safetensors.torch import load_file

import perceptok
from perceptok.cli import main

TESTS = Path(__file__).resolve().parent
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def fake_hub(monkeypatch):
    """Patch HfApi so that uploads are recorded (with the files' contents) instead of sent."""
    calls: dict = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = {"repo_id": repo_id, **kwargs}
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        calls["upload_folder"] = {"repo_id": repo_id, "files": files, **kwargs}
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/{COMMIT}"})()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_push_to_hub_uploads_config_and_card(fake_hub):
    tok = perceptok.BoxTokenizer.from_preset("paligemma")
    info = tok.push_to_hub("acme/boxes-paligemma", private=True, revision="dev", commit_message="first")
    assert info.commit_url.endswith(COMMIT)
    assert fake_hub["create_repo"]["repo_id"] == "acme/boxes-paligemma"
    assert fake_hub["create_repo"]["private"] is True and fake_hub["create_repo"]["exist_ok"] is True
    up = fake_hub["upload_folder"]
    assert up["repo_id"] == "acme/boxes-paligemma" and up["revision"] == "dev" and up["commit_message"] == "first"
    assert set(up["files"]) == {"config.json", "README.md"}
    config = json.loads(up["files"]["config.json"])
    assert config["tokenizer_type"] == "boxes" and config["bins"] == 1024 and config["order"] == "yx"
    assert b"library_name: perceptok" in up["files"]["README.md"]


def test_push_uploads_weights_of_weighted_tokenizers(fake_hub, tmp_path):
    sys.path.insert(0, str(TESTS))
    from toy_modality import ScalarCodebookTokenizer

    if "scalar_codebook" not in perceptok.list_tokenizers():
        perceptok.register_tokenizer("scalar_codebook")(ScalarCodebookTokenizer)
    ScalarCodebookTokenizer().push_to_hub("acme/toy")
    files = fake_hub["upload_folder"]["files"]
    assert set(files) == {"config.json", "README.md", "model.safetensors"}
    (tmp_path / "w.safetensors").write_bytes(files["model.safetensors"])
    assert load_file(str(tmp_path / "w.safetensors"))["codebook"].shape == (8,)


def test_cli_push(fake_hub, tmp_path, capsys):
    perceptok.load("boxes:kosmos2").save_pretrained(tmp_path)
    assert main(["push", str(tmp_path), "acme/kosmos", "--private", "--message", "hello"]) == 0
    assert "acme/kosmos" in capsys.readouterr().out
    assert fake_hub["upload_folder"]["commit_message"] == "hello"
    assert json.loads(fake_hub["upload_folder"]["files"]["config.json"])["bins"] == 32


def seed_cache(cache: Path, repo_id: str, tok: perceptok.PerceptionTokenizer, refs: tuple[str, ...] = ("main",)) -> None:
    """Lay out a Hub cache entry as huggingface_hub writes it: refs/<ref> → snapshots/<commit>/."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    tok.save_pretrained(repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(COMMIT)


def test_from_pretrained_hub_id_offline_from_cache(tmp_path):
    seed_cache(tmp_path, "acme/boxes-florence", perceptok.load("boxes:florence2"), refs=("main", "v1"))
    script = (
        "import perceptok\n"
        "print(perceptok.AutoPerceptionTokenizer.from_pretrained('acme/boxes-florence').config.preset)\n"
        "print(perceptok.BoxTokenizer.from_pretrained('acme/boxes-florence', revision='v1').config.preset)\n"
        f"print(perceptok.load('acme/boxes-florence', revision='{COMMIT}').config.bins)\n"
        "try:\n    perceptok.load('acme/not-cached')\nexcept perceptok.CheckpointError as e:\n    print('ERR', e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:3] == ["florence2", "florence2", "1000"]
    assert lines[3].startswith("ERR") and "not in the local Hugging Face cache" in lines[3]


def _raises(error: Exception):
    def fail(self, *args, **kwargs):
        raise error
    return fail


def test_cli_hub_failures_are_one_line(monkeypatch, capsys):
    """Issue 10 (1): without a network, huggingface_hub 2.x raises httpx errors (not OSError);
    every Hub failure becomes one line that says what to do, and exit status 2."""
    import importlib
    import importlib.util

    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    # huggingface_hub's own HTTP library: httpx2 in 2.x, httpx before
    httpx = next(importlib.import_module(m) for m in ("httpx2", "httpx") if importlib.util.find_spec(m))

    request = httpx.Request("POST", "https://huggingface.co/api/repos/create")
    cases = {
        "HF_HUB_OFFLINE=1": httpx.ConnectError("[Errno -3] Temporary failure in name resolution", request=request),
        "hf auth login": HfHubHTTPError("401 Unauthorized", response=httpx.Response(401, request=request)),
        "rate-limiting": HfHubHTTPError("429 Too Many Requests", response=httpx.Response(429, request=request)),
        "repository id": RepositoryNotFoundError("404 Repository Not Found", response=httpx.Response(404, request=request)),
    }
    for advice, error in cases.items():
        monkeypatch.setattr(HfApi, "create_repo", _raises(error))
        assert main(["push", "boxes", "acme/boxes"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("perceptok: error: ") and advice in err, err


def test_cli_says_lenient_not_strict_false(capsys):
    """Issue 10 (4): the command line's advice names its own flag."""
    assert main(["decode", "boxes", "(<PIXEL_1>,<PIXEL_2>"]) == 2
    err = capsys.readouterr().err
    assert "--lenient" in err and "strict=False" not in err


def test_cli_info_of_a_hub_depth_tokenizer_offline_without_torch(tmp_path):
    """``perceptok info owner/name`` of a depth tokenizer reads the cached config.json and the
    weights file's header: what the loaded tokenizer says of itself, without importing torch."""
    from perceptok.depth import DepthTokenizer, DepthTokenizerConfig
    from perceptok.describe import describe

    torch.manual_seed(0)
    tok = DepthTokenizer(DepthTokenizerConfig(preset="custom", width=8, token_prefix="HUBDEPTH"))
    seed_cache(tmp_path, "acme/depth-tiny", tok)
    script = ("import json, sys\nfrom perceptok.cli.main import main\n"
              "assert main(['info', 'acme/depth-tiny']) == 0\n"
              "print(json.dumps('torch' in sys.modules))\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    printed, torch_loaded = out.stdout.rsplit("\n", 2)[:2]
    assert json.loads(printed) == describe(tok) and json.loads(torch_loaded) is False
    assert json.loads(printed)["start_token"] == "<HUBDEPTH_START>"
