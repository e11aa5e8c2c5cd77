"""End to end on a tiny random LLaVA built from configs and a tokenizer trained here: depth + box
+ point vocabularies, curriculum data from synthetic scenes and the real data, a few dozen LoRA
steps with the loss falling, save, reload in one call, constrained generation that holds exactly
100 depth codes and parses back into a depth map and an answer."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("peft")

from llava_fixtures import short_of_memory, tiny_llava, tiny_lm_tokenizer  # noqa: E402
from perceptok import BoxTokenizer, PointTokenizer, PooledDepthTokenizer, load  # noqa: E402
from perceptok_llava.data import build_records  # noqa: E402
from perceptok_llava.images import ImageRecipe  # noqa: E402
from perceptok_llava.sources import coco_samples, manifest_samples, synthetic_samples  # noqa: E402
from perceptok_llava.generate import generate_with_perception  # noqa: E402
from perceptok_llava.checkpointing import is_checkpointing  # noqa: E402
from perceptok_llava.batches import collate  # noqa: E402
from perceptok_llava.train import LlavaTrainConfig, load_trained, train_llava  # noqa: E402
from perceptok_llava.vocab import add_perception_tokens  # noqa: E402


def tiny_processor(lm_tok):
    from transformers import CLIPImageProcessor, LlavaProcessor

    return LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                          tokenizer=lm_tok, patch_size=8, vision_feature_select_strategy="default",
                          num_additional_image_tokens=1)


def tokenizers():
    return {"depth": PooledDepthTokenizer(), "boxes": BoxTokenizer.from_preset("aurora"),
            "points": PointTokenizer.from_preset("aurora")}


def test_labels_cover_only_the_answer():
    lm_tok = tiny_lm_tokenizer()
    records = build_records(synthetic_samples(2, size=(64, 80)), **tokenizers(), tasks=["counting_direct"])
    batch = collate(records, tiny_processor(lm_tok))
    for row, labels in zip(batch["input_ids"], batch["labels"]):
        kept = row[labels != -100].tolist()
        assert lm_tok.decode(kept).strip().endswith(lm_tok.eos_token)
        assert "How many" not in lm_tok.decode(kept)


def test_token_lengths_in_chunks_are_each_records_own_length():
    from perceptok_llava.batches import token_lengths, training_text

    lm_tok = tiny_lm_tokenizer()
    records = build_records(synthetic_samples(3, size=(48, 64)), **tokenizers(), seed=0)
    each = [len(lm_tok(training_text(r, lm_tok))["input_ids"]) for r in records]
    assert token_lengths(records, lm_tok, chunk=4) == token_lengths(records, lm_tok) == each and len(set(each)) > 3


@pytest.mark.parametrize("side", ["left", "right"])
def test_labels_start_where_the_processors_own_prompt_ends(side):
    """collate processes the images once and tokenises the prompts as text; the answer must start
    exactly where the processor, given the prompt and its image, ends."""
    from perceptok_llava.batches import chat

    lm_tok = tiny_lm_tokenizer()
    lm_tok.padding_side = side
    processor = tiny_processor(lm_tok)
    records = build_records(synthetic_samples(6, size=(64, 80)), **tokenizers())
    records = [records[i] for i in torch.randperm(len(records), generator=torch.Generator().manual_seed(0))[:8]]
    batch = collate(records, processor)
    prompts = processor(text=[chat(r["prompt"]) for r in records], images=[r["image"].load() for r in records],
                        return_tensors="pt", padding=True)
    assert len({int(m.sum()) for m in batch["attention_mask"]}) > 1  # rows of different lengths: padding matters
    for i in range(len(records)):
        n_prompt, n_all = int(prompts["attention_mask"][i].sum()), int(batch["attention_mask"][i].sum())
        real = (batch["attention_mask"][i] == 1).nonzero().flatten()
        assert (batch["labels"][i, real[:n_prompt]] == -100).all()
        assert torch.equal(batch["labels"][i, real[n_prompt:]], batch["input_ids"][i, real[n_prompt:]])
        assert n_all > n_prompt + 1
        assert (batch["labels"][i, batch["attention_mask"][i] == 0] == -100).all()


def test_packed_rows_give_every_record_its_own_logits_and_the_same_loss():
    """Records packed end to end (position_ids restarting, no attention mask) must each see only
    themselves: their logits equal those of the record alone, the batch loss equals the padded
    batch's (the same answer tokens), and the per-task losses are the same."""
    from accelerate import Accelerator

    from perceptok_llava.batches import pack
    from perceptok_llava.losses import TaskLosses

    torch.manual_seed(0)
    lm_tok = tiny_lm_tokenizer()
    model = tiny_llava(len(lm_tok) + 200, lm_tok.convert_tokens_to_ids("<image>")).eval()
    processor = tiny_processor(lm_tok)
    add_perception_tokens(model, lm_tok, tokenizers())
    records = build_records(synthetic_samples(3, size=(64, 80)), **tokenizers(), seed=0)[:7]
    tasks = sorted({r["task"] for r in records})
    padded = collate(records, processor, task_names=tasks)
    packed = collate(records, processor, task_names=tasks, per_row=3)
    assert packed["input_ids"].shape[0] == 3 and "attention_mask" not in packed
    real = int(padded["attention_mask"].sum())
    assert int((packed["segment"] >= 0).sum()) == real
    assert packed["input_ids"].numel() - real < padded["input_ids"].numel() - real  # less padding
    model_inputs = {k: v for k, v in packed.items() if k not in ("task_index", "segment")}
    with torch.no_grad():
        out = model(**model_inputs, use_cache=False)
        assert torch.allclose(out.loss, model(**{k: v for k, v in padded.items() if k != "task_index"}).loss, atol=1e-5)
        for k in range(len(records)):
            row, cols = (packed["segment"] == k).nonzero(as_tuple=True)
            original = [i for i in range(len(records)) if torch.equal(
                padded["input_ids"][i][padded["attention_mask"][i].bool()], packed["input_ids"][row, cols])]
            assert original, k
            alone = collate([records[original[0]]], processor)
            logits = model(input_ids=alone["input_ids"], pixel_values=alone["pixel_values"]).logits[0]
            assert torch.allclose(out.logits[row, cols], logits, atol=1e-4)
    by_row, by_segment = TaskLosses(tasks, torch.device("cpu")), TaskLosses(tasks, torch.device("cpu"))
    with torch.no_grad():
        by_row.add(model(**{k: v for k, v in padded.items() if k != "task_index"}).logits, padded["labels"],
                   padded["task_index"])
    by_segment.add(out.logits, packed["labels"], packed["task_index"], packed["segment"])
    rows, segments = by_row.reduce(Accelerator(cpu=True)), by_segment.reduce(Accelerator(cpu=True))
    assert rows.keys() == segments.keys() and all(abs(rows[t] - segments[t]) < 1e-4 for t in rows)
    with pytest.raises(ValueError, match="one image a record"):
        pack({**padded, "image_sizes": torch.zeros(7, 2)}, 2, 0)


@pytest.mark.parametrize("per_row", [1, 3])
def test_logits_only_from_the_first_answer_on_give_the_same_losses_and_gradients(per_row):
    """``keep_answer_logits``: the LM head runs only from the batch's earliest answer on (the
    image's tokens and the prompt need none); the LM loss, its gradient, the per-task losses and
    the depth reconstruction loss are those of the full logits, padded or packed."""
    from accelerate import Accelerator

    from perceptok_llava.batches import keep_answer_logits
    from perceptok_llava.losses import TaskLosses, reconstruction_loss

    torch.manual_seed(0)
    lm_tok = tiny_lm_tokenizer()
    model = tiny_llava(len(lm_tok) + 200, lm_tok.convert_tokens_to_ids("<image>"))
    processor = tiny_processor(lm_tok)
    toks = {**tokenizers(), "depth": load("depth")}  # the VQ-VAE: decode_soft, so a reconstruction loss
    vocab = add_perception_tokens(model, lm_tok, toks)
    records = build_records(synthetic_samples(3, size=(64, 80)), **toks, seed=0)
    records = [r for r in records if r["task"] in ("relative_depth_cot", "counting_direct")][:6]
    tasks = sorted({r["task"] for r in records})
    full = collate(records, processor, task_names=tasks, per_row=per_row)
    kept = keep_answer_logits(full)
    width = full["labels"].shape[1]
    assert kept["logits_to_keep"] < width - 16  # the image's 16 tokens come before every answer
    results = []
    for batch in (full, kept):
        model.zero_grad()
        inputs = {k: v for k, v in batch.items() if k not in ("task_index", "segment")}
        out = model(**inputs, use_cache=False)
        recon = reconstruction_loss(out.logits, batch["labels"], vocab)
        (out.loss + recon).backward()
        task_losses = TaskLosses(tasks, torch.device("cpu"))
        task_losses.add(out.logits.detach(), batch["labels"], batch["task_index"], batch.get("segment"))
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((out.loss, recon, task_losses.reduce(Accelerator(cpu=True)), grads, out.logits.shape[1]))
    (loss, recon, by_task, grads, n), (loss_k, recon_k, by_task_k, grads_k, n_k) = results
    assert (n, n_k) == (width, kept["logits_to_keep"]) and recon > 0
    torch.testing.assert_close(loss_k, loss)
    torch.testing.assert_close(recon_k, recon)
    assert by_task_k.keys() == by_task.keys() == set(tasks)
    assert [by_task_k[t] for t in tasks] == pytest.approx([by_task[t] for t in tasks], rel=1e-6)
    for a, b in zip(grads, grads_k, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_held_out_records_share_no_source_image_with_training():
    from perceptok_llava.held_out import sample_of, split_held_out

    records = build_records(synthetic_samples(10, size=(64, 80)), **tokenizers(), seed=0)
    train, held = split_held_out(records, 0.2, seed=0)
    assert len(train) + len(held) == len(records)
    assert {sample_of(r) for r in held} == {sample_of(r) for r in held} - {sample_of(r) for r in train}
    assert len({sample_of(r) for r in held}) == 2 and {id(r["image"]) for r in held}.isdisjoint(
        id(r["image"]) for r in train)
    assert split_held_out(records, 0.2, seed=0) == (train, held)  # the same split on every rank and every run
    assert split_held_out(records, 0.2, seed=1)[1] != held
    assert split_held_out(records, 0.01, seed=0)[1]  # at least one sample
    with pytest.raises(ValueError, match="nothing to train on"):
        split_held_out(records, 0.99, seed=0)


def test_train_save_reload_generate(tmp_path, shared_data):
    torch.manual_seed(0)
    lm_tok = tiny_lm_tokenizer()
    base = tiny_llava(len(lm_tok) + 20, lm_tok.convert_tokens_to_ids("<image>"))
    base.save_pretrained(tmp_path / "base")  # reloaded by load_trained like a Hub checkpoint
    processor = tiny_processor(lm_tok)
    samples = list(synthetic_samples(6, size=(64, 80)))
    samples += list(manifest_samples(shared_data / "depth" / "manifest.jsonl"))[:2]
    samples += list(coco_samples(shared_data / "boxes" / "voc100" / "instances.json"))[:2]
    records = build_records(samples, **tokenizers())
    cfg = LlavaTrainConfig(out=str(tmp_path / "run"), lora_r=8, lora_alpha=16, lr=3e-3, projector_lr=3e-4,
                           batch_size=4, stages=4, samples_per_stage=48, recon_weight=0.1, gradient_checkpointing=False,
                           val_fraction=0.2)
    result = train_llava(base, processor, tokenizers(), records, cfg, progress=False)
    losses = result["losses"]
    assert len(losses) == 48
    assert sum(losses[-8:]) / 8 < 0.9 * sum(losses[:8]) / 8
    # every step logged as it ended: 4 stages of 12 steps, the warm-up's learning rate then the cosine's
    import json

    from PIL import Image

    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 49)) and [r["loss"] for r in rows] == losses
    assert [r["stage"] for r in rows] == [k // 12 for k in range(48)]
    lrs = [r["lr"] for r in rows]
    assert lrs[0] < lrs[1] == max(lrs) and lrs[-1] < lrs[len(lrs) // 2] < max(lrs)
    assert all(r["tokens"] > 0 and r["tokens_per_s"] > 0 and r["grad_norm"] > 0 for r in rows)
    # 2 of the 10 source samples held out, scored at the end of every stage: the loss falls there too
    held = [r for r in rows if "held_out_loss" in r]
    assert [r["step"] for r in held] == [12, 24, 36, 48] and held[-1]["held_out_loss"] < 0.97 * held[0]["held_out_loss"]
    assert result["held_out_loss"] == held[-1]["held_out_loss"] and set(result["held_out_tasks"]) <= {r["task"] for r in records}
    with Image.open(tmp_path / "run" / "losses.png") as plot:
        assert plot.format == "PNG" and plot.width > 600 and plot.height > 500

    model, processor, vocab = load_trained(tmp_path / "run", tmp_path / "base")
    merged, _, _ = load_trained(tmp_path / "run", tmp_path / "base", merge=True)
    assert not any("lora_" in name for name, _ in merged.named_parameters())  # folded into the weights
    inputs = {k: v for k, v in collate(records[:2], processor).items() if k != "labels"}
    assert torch.allclose(model(**inputs).logits, merged(**inputs).logits, atol=1e-4)
    image = records[0]["image"]
    outs = generate_with_perception(model, processor, vocab, [image, image],
                                    ["<image>\nWhat is the depth map of this image? Answer with depth tokens."] * 2,
                                    start_with="<DEPTH_START>", max_new_tokens=110, do_sample=False, num_beams=2)
    for out in outs:
        span = out.text[: out.text.index("<DEPTH_END>") + len("<DEPTH_END>")]
        assert span.count("<DEPTH_") == 102  # start + exactly 100 codes + end
        assert len(out.depth) == 1 and out.depth[0].shape == (image.height, image.width)  # the image's own frame
        assert isinstance(out.answer, str)

    # predict → eval, the documented loop, on real BLINK relative-depth items
    from perceptok_llava.cli import main as llava_cli

    samples = shared_data / "benchmarks" / "samples.jsonl"
    predictions = tmp_path / "predictions.jsonl"
    assert llava_cli(["predict", "--model", str(tmp_path / "run"), "--base", str(tmp_path / "base"),
                      "--benchmark-file", str(samples), "--benchmark", "BLINK/Relative_Depth", "--limit", "3",
                      "--batch-size", "2", "--max-new-tokens", "8", "--out", str(predictions), "--quiet"]) == 0
    import json

    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(rows) == 3 and all(isinstance(r["prediction"], str) and r["answer"] for r in rows)
    assert llava_cli(["eval", "--benchmark", "blink-depth", "--predictions", str(predictions), "--json"]) == 0


def test_training_entry_point_under_torchrun_gloo(tmp_path):
    """Two gloo ranks of batch 2 train exactly as one process of batch 4 (the same global batches):
    each step's gradient is the mean over all its answer tokens, whichever rank holds them. A
    two-rank run stopped by its time limit after its first step, then resumed (a loader worker on
    each rank), ends as the uninterrupted two-rank run did."""
    import json
    import subprocess
    import sys

    from perceptok_llava.cli import main as llava_cli

    lm_tok = tiny_lm_tokenizer()
    tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>")).save_pretrained(tmp_path / "base")
    tiny_processor(lm_tok).save_pretrained(tmp_path / "base")
    args = ["train", "--model", str(tmp_path / "base"), "--tokenizers", "depth=depth:pooled,boxes,points",
            "--data", "synthetic:3", "--lora-r", "4", "--stages", "2", "--samples-per-stage", "8",
            "--gradient-checkpointing", "off", "--group-by-length", "stage", "--workers", "1", "--lora-dropout", "0",
            "--val-fraction", "0.34"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "perceptok_llava", *args,
           "--out", str(tmp_path / "run"), "--batch-size", "2"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    printed = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1 and printed[0]["steps"] == 4  # 16 samples / 2 ranks / batch 2
    log = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert log["config"]["group_by_length"] == "stage" and log["config"]["workers"] == 1 and 0 <= log["padding"] < 1
    assert log["config"]["lora_dropout"] == 0 and printed[0]["padding"] == round(log["padding"], 4)
    assert (tmp_path / "run" / "adapter_model.safetensors").exists()
    assert (tmp_path / "run" / "perception_vocab.json").exists()
    assert llava_cli([*args, "--out", str(tmp_path / "one"), "--batch-size", "4"]) == 0
    alone = json.loads((tmp_path / "one" / "train_log.json").read_text())
    assert log["losses"] == pytest.approx(alone["losses"], rel=1e-4)
    # the held-out sample (one of 3) scored over both ranks, each record once: as by one process
    assert printed[0]["held_out_loss"] == log["held_out_loss"] == pytest.approx(alone["held_out_loss"], rel=1e-4)
    assert log["held_out_tasks"] == pytest.approx(alone["held_out_tasks"], rel=1e-4) and len(log["held_out_tasks"]) >= 4
    two_ranks = [*cmd[:-4], "--out", str(tmp_path / "stopped"), "--batch-size", "2"]
    results = []
    for extra in (["--minutes", "0.0001"], []):  # stopped after the first step by the clock, then resumed
        run = subprocess.run([*two_ranks, *extra], capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        results.append(json.loads([line for line in run.stdout.splitlines() if line.startswith("{")][-1]))
    assert results[0]["complete"] is False and results[0]["steps"] == 1
    assert results[1]["complete"] is True and results[1]["resumed_from"] == 1 and results[1]["steps"] == 4
    resumed = json.loads((tmp_path / "stopped" / "train_log.json").read_text())
    assert resumed["losses"] == pytest.approx(log["losses"], rel=1e-5)
    assert resumed["held_out_loss"] == pytest.approx(log["held_out_loss"], rel=1e-5)


def test_a_killed_training_run_resumes_where_it_stopped(tmp_path, capsys):
    """SIGKILL midway through ``perceptok-llava train`` (checkpoints every step), then the same
    command again: it resumes from the last checkpoint and ends with the losses, padding, stage
    draws and weights of a run that was never interrupted (LoRA dropout on, so every random number
    generator must come back, and the temperature schedule, so the sampler must). Other options on
    resuming are a one-line error; a completed run leaves no checkpoint behind."""
    import json
    import signal
    import subprocess
    import sys
    import time

    from safetensors.torch import load_file

    lm_tok = tiny_lm_tokenizer()
    tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>")).save_pretrained(tmp_path / "base")
    tiny_processor(lm_tok).save_pretrained(tmp_path / "base")
    command = [sys.executable, "-m", "perceptok_llava", "train", "--model", str(tmp_path / "base"),
               "--tokenizers", "depth=depth:pooled,boxes,points", "--data", "synthetic:3", "--lora-r", "4",
               "--batch-size", "2", "--stages", "3", "--samples-per-stage", "24", "--schedule", "temperature",
               "--gradient-checkpointing", "off", "--save-every", "1"]
    out = tmp_path / "resumed"
    proc = subprocess.Popen([*command, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    progress, deadline = out / "checkpoint" / "progress.json", time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            if json.loads(progress.read_text())["step"] >= 14:  # into the second stage (12 steps a stage)
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(progress.read_text())["step"]
    assert 14 <= killed_at < 36, f"the kill should land midway (checkpoint of step {killed_at} of 36)"
    from perceptok_llava.cli import main as llava_cli

    capsys.readouterr()
    assert llava_cli([*command[3:], "--out", str(out), "--batch-size", "4"]) == 2  # another run's checkpoint
    error = capsys.readouterr().err
    said = [line for line in error.splitlines() if line.startswith("perceptok-llava: error:")]
    assert len(said) == 1 and "batch_size 2 → 4" in said[0] and "--no-resume" in said[0] and "Traceback" not in error
    resumed = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    printed = json.loads(resumed.stdout.splitlines()[-1])
    assert printed["resumed_from"] == killed_at and printed["complete"] is True
    assert f"resuming {out / 'checkpoint'} at step {killed_at} of 36" in resumed.stderr
    assert "0 held out; 36 optimiser steps of 2 records on 1 process" in resumed.stderr
    whole = subprocess.run([*command, "--out", str(tmp_path / "whole")], capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    logs = [json.loads((folder / "train_log.json").read_text()) for folder in (out, tmp_path / "whole")]
    assert len(logs[0]["losses"]) == 36 and logs[0]["losses"] == pytest.approx(logs[1]["losses"], rel=1e-6)
    assert logs[0]["padding"] == pytest.approx(logs[1]["padding"], rel=1e-9)
    assert logs[0]["task_losses"] == pytest.approx(logs[1]["task_losses"], rel=1e-6)
    assert logs[0]["stage_weights"].keys() == logs[1]["stage_weights"].keys() == {"0", "1", "2"}
    for stage, drawn in logs[1]["stage_weights"].items():
        assert logs[0]["stage_weights"][stage] == pytest.approx(drawn, rel=1e-6), stage
    weights = [load_file(folder / "adapter_model.safetensors") for folder in (out, tmp_path / "whole")]
    assert weights[0].keys() == weights[1].keys()
    for name, tensor in weights[1].items():
        torch.testing.assert_close(weights[0][name], tensor, rtol=1e-5, atol=1e-7)
    for folder in (out, tmp_path / "whole"):
        assert not (folder / "checkpoint").exists() and not list(folder.glob(".checkpoint*"))
    # the per-step log holds every step once, the killed run's steps past its checkpoint dropped
    steps = [[json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()] for folder in
             (out, tmp_path / "whole")]
    assert [r["step"] for r in steps[0]] == list(range(1, 37)) == [r["step"] for r in steps[1]]
    assert [r["loss"] for r in steps[0]] == pytest.approx([r["loss"] for r in steps[1]], rel=1e-6)


def test_resuming_after_a_crash_between_the_renames_or_inside_a_save(tmp_path, monkeypatch):
    """A run stopped early (at its 2nd step) keeps its checkpoint. A crash between the renames of
    the next save leaves it only in ``.checkpoint.*.old/``, and a save cut short leaves
    ``.checkpoint.tmp/``: the same call again resumes from the set-aside copy and, complete,
    leaves neither behind."""
    import shutil

    from perceptok_llava import resume

    toks = tokenizers()
    records = build_records(synthetic_samples(3, size=(64, 80)), **toks, seed=0)
    cfg = LlavaTrainConfig(out=str(tmp_path / "run"), lora_r=4, lora_alpha=8, batch_size=2, stages=1,
                           samples_per_stage=8, gradient_checkpointing=False, save_every=0)
    asked = []
    monkeypatch.setattr(resume.EarlyStop, "now", lambda self: asked.append(1) or len(asked) == 2)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        lm_tok = tiny_lm_tokenizer()
        model = tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>"))
        runs.append(train_llava(model, tiny_processor(lm_tok), toks, records, cfg, progress=False))
        if len(runs) == 1:
            assert not runs[0]["complete"] and len(runs[0]["losses"]) == 2
            aside = tmp_path / "run" / ".checkpoint.x1.old"
            aside.mkdir()
            shutil.move(tmp_path / "run" / "checkpoint", aside / "checkpoint")
            (tmp_path / "run" / ".checkpoint.tmp").mkdir()
            (tmp_path / "run" / ".checkpoint.tmp" / "optimizer.bin").write_bytes(b"half")
    assert runs[1]["complete"] and runs[1]["resumed_from"] == 2 and len(runs[1]["losses"]) == 4
    assert runs[1]["losses"][:2] == runs[0]["losses"]
    assert not list((tmp_path / "run").glob("*checkpoint*"))


def test_a_crash_while_saving_the_trained_model_leaves_no_half_written_run(tmp_path, monkeypatch):
    """The trained model is written aside and moved in file by file, ``train_log.json`` last (and
    a completed run's old one removed first): killed halfway through the moves, the folder holds
    whole files, no log that says the run is complete, and the checkpoint; the same call again
    resumes from it, ends complete, and the model loads."""
    import json
    import os
    from pathlib import Path

    from perceptok import checkpoint

    toks = tokenizers()
    records = build_records(synthetic_samples(3, size=(64, 80)), **toks, seed=0)
    cfg = LlavaTrainConfig(out=str(tmp_path / "run"), lora_r=4, lora_alpha=8, batch_size=2, stages=1,
                           samples_per_stage=8, gradient_checkpointing=False, save_every=2, overwrite=True)
    lm_tok = tiny_lm_tokenizer()
    tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>")).save_pretrained(tmp_path / "base")

    def train():
        torch.manual_seed(0)
        lm_tok = tiny_lm_tokenizer()
        model = tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>"))
        return train_llava(model, tiny_processor(lm_tok), toks, records, cfg, progress=False)

    first = train()  # a completed run in the folder, which the next one replaces (overwrite)
    moves, real_replace = [], os.replace

    def killed_on_the_third_move(src, dst):  # of a file of the staging folder into the run's
        if ".final." in str(src) and Path(dst).parent == tmp_path / "run":
            moves.append(dst)
            if len(moves) == 3:
                raise KeyboardInterrupt("killed")
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", killed_on_the_third_move)
    with pytest.raises(KeyboardInterrupt):
        train()
    monkeypatch.undo()
    run = tmp_path / "run"
    assert len(moves) == 3 and not (run / "train_log.json").exists() and (run / "checkpoint").is_dir()
    assert not list(run.glob(".final.*"))  # the staging folder went with the error
    safetensors = run / "adapter_model.safetensors"
    if safetensors.exists():  # moved whole or not at all
        from safetensors.torch import load_file

        assert load_file(safetensors)
    again = train()
    assert again["complete"] and again["resumed_from"] == 2 and again["losses"] == first["losses"]
    assert json.loads((run / "train_log.json").read_text())["complete"] and not (run / "checkpoint").exists()
    model, _, _ = load_trained(run, tmp_path / "base")
    assert any("lora_" in name for name, _ in model.named_parameters())


def test_sigterm_stops_training_with_a_checkpoint_to_resume_from(tmp_path):
    """A cluster sends SIGTERM before it ends or preempts a job: the run finishes its optimiser
    step, saves a checkpoint, the adapter and its log (not complete) and exits normally; the same
    command then completes the run, and once more is an error that leaves the run as it was."""
    import json
    import signal
    import subprocess
    import sys
    import time

    lm_tok = tiny_lm_tokenizer()
    tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>")).save_pretrained(tmp_path / "base")
    tiny_processor(lm_tok).save_pretrained(tmp_path / "base")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "perceptok_llava", "train", "--model", str(tmp_path / "base"),
               "--tokenizers", "depth=depth:pooled,boxes,points", "--data", "synthetic:3", "--lora-r", "4",
               "--batch-size", "2", "--stages", "2", "--samples-per-stage", "24", "--gradient-checkpointing", "off",
               "--save-every", "0", "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log, deadline = out / "log.jsonl", time.time() + 300
    while time.time() < deadline and proc.poll() is None and \
            (not log.is_file() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    printed = json.loads(stdout.splitlines()[-1])
    assert printed["complete"] is False and 3 <= printed["steps"] < 24
    assert json.loads((out / "checkpoint" / "progress.json").read_text())["step"] == printed["steps"]
    assert (out / "adapter_model.safetensors").is_file()
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    printed_again = json.loads(again.stdout.splitlines()[-1])
    assert printed_again["complete"] is True and printed_again["resumed_from"] == printed["steps"]
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == list(range(1, 25))
    assert not (out / "checkpoint").exists()
    # the same command once more would replace the completed run: an error, and nothing is lost
    adapter = (out / "adapter_model.safetensors").read_bytes()
    once_more = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert once_more.returncode == 2 and "holds a completed run" in once_more.stderr and "--overwrite" in once_more.stderr
    assert "Traceback" not in once_more.stderr and (out / "adapter_model.safetensors").read_bytes() == adapter
    replaced = subprocess.run([*command, "--overwrite"], capture_output=True, text=True, timeout=600)
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert json.loads(replaced.stdout.splitlines()[-1])["resumed_from"] == 0


@pytest.mark.parametrize("stop", ["clock", "sigterm"])
def test_three_ranks_uneven_records_grad_accum_and_an_early_stop(tmp_path, stop):
    """accelerate's prepared DataLoader over the curriculum: 3 gloo ranks, 301 records a stage,
    batch 2, grad_accum 2, a loader worker on each rank, and gradient checkpointing "auto" with
    rank 1 alone needing every layer checkpointed (every rank must choose that, after the same
    number of trial steps). The run stops early: ``clock``, a time limit read on rank 0 only while
    the other ranks' clocks run 2 and 3 times as fast; ``sigterm``, rank 2 alone gets SIGTERM in
    its 3rd step. Every rank must take the same optimiser steps and end with the same weights; a
    rank with one batch more (the old [rank::world] shards) or one that stopped on its own would
    block the others in all-reduce until the timeout below."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    lm_tok = tiny_lm_tokenizer()
    tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>")).save_pretrained(tmp_path / "base")
    tiny_processor(lm_tok).save_pretrained(tmp_path / "base")
    worker = Path(__file__).with_name("ddp_llava_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=3", str(worker), str(tmp_path / "base"),
           str(tmp_path / "run"), "0.1" if stop == "clock" else "sigterm"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # about a minute when correct
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [json.loads((tmp_path / "run" / f"rank{r}.json").read_text()) for r in range(3)]
    assert len({r["steps"] for r in ranks}) == 1 and len({r["weights"] for r in ranks}) == 1
    assert [r["checkpointing"] for r in ranks] == [1, 1, 1]  # rank 1 alone needed every layer checkpointed
    # gathering the weights is a collective under FSDP and ZeRO-3: every rank takes part, in the
    # checkpoint's save_state and in saving the trained model
    assert [r["gathered_weights"] for r in ranks] == [2, 2, 2]
    # 2 stages of 26 whole steps would be 52
    assert 1 <= ranks[0]["steps"] < 50 if stop == "clock" else ranks[0]["steps"] == 3
    # stopped early, the run is not complete and keeps a checkpoint of its last step, with every
    # rank's generators in it
    assert not any(r["complete"] for r in ranks)
    assert json.loads((tmp_path / "run" / "train_log.json").read_text())["complete"] is False
    saved = json.loads((tmp_path / "run" / "checkpoint" / "progress.json").read_text())
    assert saved["step"] == ranks[0]["steps"] and saved["run"]["processes"] == 3
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoint").glob("random_states_*")) == \
        [f"random_states_{r}.pkl" for r in range(3)]


def test_training_from_image_files_reads_them_in_the_workers_and_a_broken_one_is_a_one_line_error(tmp_path, capsys):
    """Records hold image files' paths (an ``ImageRecipe``), so the loader's worker reads them:
    training from COCO files trains, and a file whose pixels are cut short after the records were
    built stops training with a one-line error that names it (the worker's traceback, which torch
    puts in the message, left out)."""
    import json

    from perceptok_llava.cli import main as llava_cli

    lm_tok = tiny_lm_tokenizer()
    tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>")).save_pretrained(tmp_path / "base")
    tiny_processor(lm_tok).save_pretrained(tmp_path / "base")
    (tmp_path / "images").mkdir()
    images, annotations = [], []
    for i, sample in enumerate(synthetic_samples(3, size=(48, 64))):
        sample.image.load().save(tmp_path / "images" / f"{i}.png")
        images.append({"id": i, "file_name": f"{i}.png", "width": 64, "height": 48})
        annotations += [{"id": 10 * i + j, "image_id": i, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0]}
                        for j, (x0, y0, x1, y1) in enumerate(sample.boxes.tolist())]
    coco = tmp_path / "instances.json"
    coco.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}))
    args = ["train", "--model", str(tmp_path / "base"), "--tokenizers", "depth=depth:pooled,boxes,points",
            "--data", str(coco), "--lora-r", "4", "--stages", "1", "--samples-per-stage", "8", "--batch-size", "2",
            "--gradient-checkpointing", "off", "--workers", "1", "--out", str(tmp_path / "run")]
    assert llava_cli(args) == 0
    assert len(json.loads((tmp_path / "run" / "train_log.json").read_text())["losses"]) == 4
    capsys.readouterr()
    broken = tmp_path / "images" / "2.png"
    real_load = ImageRecipe.load

    def cut_then_load(recipe):  # the file breaks once the records are built: its header was read whole
        broken.write_bytes(broken.read_bytes()[:200])
        return real_load(recipe)

    ImageRecipe.load = cut_then_load
    try:
        assert llava_cli([*args[:-1], str(tmp_path / "again")]) == 2
    finally:
        ImageRecipe.load = real_load
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bars, on a line of its own
    assert err.startswith("perceptok-llava: error: image ") and "2.png: cannot be read" in err, err
    assert "Traceback" not in err and "worker" not in err, err
    missing = [a if a != str(coco) else str(tmp_path / "missing.json") for a in args]
    assert llava_cli([*missing[:-1], str(tmp_path / "third")]) == 2  # said before the model is loaded
    assert capsys.readouterr().err.strip() == f"perceptok-llava: error: --data {tmp_path / 'missing.json'}: no such file"


def test_gradient_checkpointing_only_where_memory_needs_it(tmp_path):
    """``gradient_checkpointing="auto"`` (the default): trial steps on the longest batch choose
    the least checkpointing that fits (none, every 4th, every 2nd, every layer). Nothing runs out
    of memory on this CPU, so it stays off (about a third less compute); a model that needs at
    least one checkpointed layer gets every 2nd (its 2 layers have no 4th), and training goes on."""
    import json

    lm_tok = tiny_lm_tokenizer()
    toks = tokenizers()
    records = build_records(synthetic_samples(2, size=(64, 80)), **toks, seed=0)
    cfg = LlavaTrainConfig(out=str(tmp_path / "roomy"), lora_r=4, lora_alpha=8, batch_size=2, stages=2, samples_per_stage=4)
    assert cfg.gradient_checkpointing == "auto"
    torch.manual_seed(0)
    roomy = train_llava(tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>")), tiny_processor(lm_tok), toks,
                        records, cfg, progress=False)
    assert roomy["gradient_checkpointing"] == 0 and not is_checkpointing(roomy["model"])
    torch.manual_seed(0)
    model = tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>"))
    calls = short_of_memory(model)
    cfg.out = str(tmp_path / "tight")
    tight = train_llava(model, tiny_processor(lm_tok), toks, records, cfg, progress=False)
    assert tight["gradient_checkpointing"] == 2 and calls[:3] == [0, 0, 1] and set(calls[3:]) == {1}
    assert len(tight["losses"]) == len(roomy["losses"]) == 4 and all(math.isfinite(x) for x in tight["losses"])
    assert json.loads((tmp_path / "tight" / "train_log.json").read_text())["gradient_checkpointing"] == 2
    with pytest.raises(ValueError, match="gradient_checkpointing"):
        LlavaTrainConfig(out="x", gradient_checkpointing="sometimes")


def test_checkpointing_auto_without_layer_intervals(tmp_path, monkeypatch):
    """A transformers without ``every_n_layers`` offers only none or every layer: "auto" must not
    report an interval it could not set."""
    from perceptok_llava import checkpointing

    monkeypatch.setattr(checkpointing, "_intervals", lambda model: False)
    lm_tok = tiny_lm_tokenizer()
    toks = tokenizers()
    records = build_records(synthetic_samples(2, size=(64, 80)), **toks, seed=0)
    torch.manual_seed(0)
    model = tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>"))
    calls = short_of_memory(model)
    cfg = LlavaTrainConfig(out=str(tmp_path), lora_r=4, lora_alpha=8, batch_size=2, stages=1, samples_per_stage=2)
    result = train_llava(model, tiny_processor(lm_tok), toks, records, cfg, progress=False)
    assert result["gradient_checkpointing"] == 1 and calls[:2] == [0, 2]


def test_temperature_schedule_follows_the_training_losses(tmp_path):
    """AURORA §3.3: task t is drawn with probability softmax(loss_t / τ). Training reports each
    task's answer loss to the sampler, so later stages lean towards the task the model finds
    hardest, and the log says so."""
    import json

    lm_tok = tiny_lm_tokenizer()
    model = tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>"))
    toks = tokenizers()
    records = build_records(synthetic_samples(3, size=(64, 80)), **toks, seed=0)
    cfg = LlavaTrainConfig(out=str(tmp_path), lora_r=4, lora_alpha=8, batch_size=2, stages=4, samples_per_stage=8,
                           schedule="temperature", gradient_checkpointing=False)
    train_llava(model, tiny_processor(lm_tok), toks, records, cfg, progress=False)
    log = json.loads((tmp_path / "train_log.json").read_text())
    stages, weights = log["stage_probabilities"], log["stage_weights"]
    assert len(log["task_losses"]) >= 2 and len(stages) == 4
    first, last = stages["0"], stages["3"]
    assert max(first.values()) - min(first.values()) < 1e-9  # before any loss: uniform
    # the last stage was drawn with the losses measured by then (not the initial 1.0 each)
    assert weights["3"] != weights["0"] and set(weights["3"]) == set(last)
    hardest = max(weights["3"], key=weights["3"].get)
    assert max(last, key=last.get) == hardest and last[hardest] > first[hardest]


def test_workers_length_groups_and_packing_change_speed_not_training(tmp_path):
    """Batches prepared in worker processes train exactly as those prepared in the training
    process; records packed two a row train as the same records padded (the same answer tokens
    in every step); grouping records by length and packing pad less (the run reports its
    padding share)."""
    toks = tokenizers()
    records = build_records(synthetic_samples(4, size=(64, 80)), **toks, seed=0)
    runs = {}
    for workers, grouped, pack in ((0, "stage", 1), (2, "stage", 1), (0, "off", 1), (0, "off", 2)):
        torch.manual_seed(0)
        lm_tok = tiny_lm_tokenizer()  # training adds the perception tokens to it
        model = tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>"))
        cfg = LlavaTrainConfig(out=str(tmp_path / f"{workers}{grouped}{pack}"), lora_r=4, lora_alpha=8, lora_dropout=0.0,
                               batch_size=4, stages=2, samples_per_stage=16, gradient_checkpointing=False,
                               workers=workers, group_by_length=grouped, pack=pack)
        runs[workers, grouped, pack] = train_llava(model, tiny_processor(lm_tok), toks, records, cfg, progress=False)
    assert runs[2, "stage", 1]["losses"] == runs[0, "stage", 1]["losses"] and len(runs[2, "stage", 1]["losses"]) == 8
    assert runs[0, "off", 2]["losses"] == pytest.approx(runs[0, "off", 1]["losses"], rel=1e-3)
    assert runs[0, "stage", 1]["padding"] < runs[0, "off", 1]["padding"] / 2
    assert runs[0, "off", 2]["padding"] < runs[0, "off", 1]["padding"] / 2
    for bad in (dict(workers=-1), dict(group_by_length=True), dict(lora_dropout=1.0), dict(pack=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LlavaTrainConfig(out="x", **bad)


def test_every_answer_token_weighs_alike_however_a_steps_records_are_split(tmp_path):
    """One optimiser step over 4 records of very different answer lengths (a one-word answer, a
    100-code depth chain of thought): 1 batch of 4, 2 of 2 accumulated, or 4 of 1 accumulated
    give the same gradient and the same logged loss, the mean over the step's answer tokens. A
    mean per micro-batch would give the one-word answer's token as much weight as 100 codes."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from perceptok_llava.batches import answer_tokens

    toks = tokenizers()
    records = build_records(synthetic_samples(3, size=(64, 80)), **toks, seed=0)
    runs = {}
    for batch_size, accum in ((4, 1), (2, 2), (1, 4)):
        torch.manual_seed(0)
        lm_tok = tiny_lm_tokenizer()
        model = tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>"))
        grads = []
        hook = register_optimizer_step_pre_hook(
            lambda opt, args, kwargs: grads.append([p.grad.clone() for g in opt.param_groups for p in g["params"]]))
        try:
            cfg = LlavaTrainConfig(out=str(tmp_path / f"{batch_size}x{accum}"), lora_r=4, lora_alpha=8, lora_dropout=0.0,
                                   batch_size=batch_size, grad_accum=accum, stages=1, samples_per_stage=4,
                                   schedule="uniform", group_by_length="off", gradient_checkpointing=False)
            processor = tiny_processor(lm_tok)
            result = train_llava(model, processor, toks, records, cfg, progress=False)
        finally:
            hook.remove()
        runs[batch_size] = (result["losses"], grads[0])
    # the step's records (sampler seed 0) answer with very different numbers of tokens
    from perceptok_llava.curriculum import CurriculumSampler
    from perceptok_llava.data import ATOMIC_TASKS

    drawn = list(CurriculumSampler([r["task"] for r in records], ATOMIC_TASKS, 4, stages=1, schedule="uniform"))
    counts = [int(answer_tokens(collate([records[i]], processor)["labels"])) for i in drawn]
    assert max(counts) > 10 * min(counts)
    (loss, whole), others = runs[4], [runs[2], runs[1]]
    assert len(loss) == 1 and all(len(other) == 1 for other, _ in others)
    for other_loss, grads in others:
        assert other_loss == pytest.approx(loss, rel=1e-5)
        for a, b in zip(whole, grads, strict=True):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-7)


def test_full_fine_tuning_trains_every_weight_and_reloads_without_an_adapter(tmp_path):
    """``finetune="full"`` (models trained from scratch): the vision tower and the LM change, no
    LoRA adapter is written, and ``load_trained`` reloads the whole model from the run folder."""
    torch.manual_seed(0)
    lm_tok = tiny_lm_tokenizer()
    model = tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    toks = tokenizers()
    records = build_records(synthetic_samples(3, size=(64, 80)), **toks, tasks=["depth_generation", "relative_depth_direct"])
    cfg = LlavaTrainConfig(out=str(tmp_path / "run"), finetune="full", batch_size=2, stages=2, samples_per_stage=4,
                           gradient_checkpointing=False)
    trained = train_llava(model, tiny_processor(lm_tok), toks, records, cfg, progress=False)["model"].eval()
    after = trained.state_dict()
    for part in ("vision_tower", "language_model.layers.0.self_attn.q_proj", "multi_modal_projector"):
        changed = [k for k in before if part in k and not torch.equal(before[k], after[k])]
        assert changed, part
    assert not (tmp_path / "run" / "adapter_config.json").exists()
    reloaded, processor, vocab = load_trained(tmp_path / "run", base_model=tmp_path / "no-base-needed")
    inputs = {k: v for k, v in collate(records[:2], processor).items() if k != "labels"}
    assert torch.allclose(trained(**inputs).logits, reloaded(**inputs).logits, atol=1e-5)
    with pytest.raises(ValueError, match="finetune must be"):
        LlavaTrainConfig(out="x", finetune="partial")


def test_static_cache_generation_matches_the_dynamic_cache():
    """``static_cache=True`` (compiled with CUDA graphs on a GPU) writes the same constrained greedy
    answers as the default cache: the constraint sees the same logits, outside the graph."""
    torch.manual_seed(0)
    lm_tok = tiny_lm_tokenizer()
    model = tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>")).eval()
    processor = tiny_processor(lm_tok)
    vocab = add_perception_tokens(model, lm_tok, tokenizers())
    images = [r["image"] for r in build_records(synthetic_samples(2, size=(64, 80)), **tokenizers(),
                                                tasks=["depth_generation"])]
    prompts = ["<image>\nWhat is the depth map of this image? Answer with depth tokens."] * 2
    kwargs = dict(start_with="<DEPTH_START>", max_new_tokens=105, do_sample=False)
    eager = generate_with_perception(model, processor, vocab, images, prompts, **kwargs)
    static = generate_with_perception(model, processor, vocab, images, prompts, static_cache=True, **kwargs)
    assert [o.text for o in static] == [o.text for o in eager]
    assert all(o.text.count("<DEPTH_") >= 101 for o in static)  # a whole span: the constraint ran


def test_predict_with_the_static_cache_gives_every_batch_one_shape_and_the_same_answers(shared_data, tmp_path):
    """``predict(static_cache=True)`` pads every prompt to the longest of the benchmark and fills
    the last batch, so the compiled step is built once; the answers are those of eager decoding.
    A record without an image is a clear error, whichever command reads it."""
    import json

    from perceptok_llava.cli import main as llava_cli
    from perceptok_llava.predict import predict, read_benchmark

    torch.manual_seed(0)
    lm_tok = tiny_lm_tokenizer()
    model = tiny_llava(len(lm_tok) + 200, lm_tok.convert_tokens_to_ids("<image>")).eval()
    processor = tiny_processor(lm_tok)
    vocab = add_perception_tokens(model, lm_tok, tokenizers())
    samples = shared_data / "benchmarks" / "samples.jsonl"
    blink = [json.loads(line) for line in samples.read_text().splitlines()][:5]
    for k, record in enumerate(blink):  # prompts of different lengths
        record["prompt"] += " Look carefully." * k
    (tmp_path / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in blink))
    records = read_benchmark(tmp_path / "bench.jsonl", images_dir=samples.parent)
    shapes = []
    generate = model.generate

    def spy(**kwargs):
        shapes.append(tuple(kwargs["input_ids"].shape))
        return generate(**kwargs)

    model.generate = spy
    kwargs = dict(batch_size=2, progress=False, max_new_tokens=6, do_sample=False)
    eager = predict(model, processor, vocab, records, **kwargs)
    eager_shapes, shapes[:] = list(shapes), []
    static = predict(model, processor, vocab, records, static_cache=True, **kwargs)
    assert [r["prediction"] for r in static] == [r["prediction"] for r in eager] and len(static) == 5
    assert len(set(shapes)) == 1 and len(shapes) == 3 and len(set(eager_shapes)) > 1
    with pytest.raises(ValueError, match="has no image path"):
        read_benchmark(samples)  # the format-only samples of other benchmarks have "image": null
    assert llava_cli(["predict", "--model", str(tmp_path), "--benchmark-file", str(samples),
                      "--benchmark", "BLINK/Counting"]) == 2


def test_prompt_tokens_count_what_the_processor_makes_of_each_prompt():
    """``prompt_tokens`` processes one image and tokenises the rest as text; every count must be
    the length of the processor's own ids for that prompt and its image, with or without a forced
    start and with the image token anywhere."""
    from perceptok_llava.generate import answer_prompt, prompt_tokens

    lm_tok = tiny_lm_tokenizer()
    processor = tiny_processor(lm_tok)
    image = build_records(synthetic_samples(1, size=(64, 80)), **tokenizers(), tasks=["counting_direct"])[0]["image"].load()
    prompts = ["<image>\nHow many?", "Which point is closer, A or B? <image>", "<image>\n" + "Look again. " * 7]
    for start_with in (None, "<DEPTH_START>"):
        counts = prompt_tokens(processor, image, prompts, start_with)
        made = [processor(text=[answer_prompt(p, start_with)], images=[image], return_tensors="pt")["input_ids"].shape[1]
                for p in prompts]
        assert counts == made and len(set(counts)) == 3


def test_gpu_smoke_script_runs_tiny_on_cpu():
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_smoke.py"
    out = subprocess.run([sys.executable, str(script), "--tiny", "--steps", "2"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    phases = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [p["phase"] for p in phases] == ["build", "train"] + ["train_throughput"] * 5 + ["train_profile",
                                            "generate", "generate", "constraint_step", "constraint_step"] + \
        ["generation"] * 10 + ["generation_table", "done"]
    steps = [p for p in phases if p["phase"] == "constraint_step"]
    assert [p["batch"] for p in steps] == [1, 8] and all(p["ms_per_step"] > 0 and p["codes_only"] for p in steps)
    profile = phases[7]
    assert profile["busy_ms"] > 0 and profile["busy_ms_by_kind"]["matmul"] > 0 and len(profile["top"]) == 10
    assert phases[1]["gradient_checkpointing"] == 0  # "auto" on a CPU with room to spare
    assert phases[1]["complete"] is True and phases[1]["held_out_loss"] > 0 and len(phases[1]["losses"]) == 4
    assert [(p["checkpointing"], p["lora_dropout"], p["per_row"], p["all_logits"]) for p in phases[2:7]] == \
        [(0, 0.05, 1, False), (1, 0.05, 1, False), (0, 0.0, 1, False), (0, 0.05, 2, False), (0, 0.05, 1, True)]
    assert all(p["tokens_per_s"] > 0 for p in phases[2:7])
    assert phases[5]["padding"] < phases[2]["padding"]  # two records a row pad less
    assert all(p["well_formed"] for p in phases if p["phase"] == "generate")
    table = phases[-2]["tokens_per_s"]  # a failed phase would be a string naming its error
    assert table == {p["run"]: p["tokens_per_s"] for p in phases if p["phase"] == "generation"}
    assert len(table) == 10 and all(isinstance(v, float) and v > 0 for v in table.values()), table
    assert {"merged/constrained/static/batch1", "merged/constrained/static/batch8"} <= set(table)


def test_mismatched_processor_is_caught_before_training():
    from transformers import CLIPImageProcessor, LlavaProcessor

    from perceptok_llava.batches import check_image_tokens

    lm_tok = tiny_lm_tokenizer()
    model = tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>"))
    record = build_records(synthetic_samples(1, size=(64, 80)), **tokenizers(), tasks=["counting_direct"])[0]
    check_image_tokens(model, tiny_processor(lm_tok), record)
    wrong = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                           tokenizer=lm_tok, patch_size=8, vision_feature_select_strategy="default",
                           num_additional_image_tokens=0)
    with pytest.raises(ValueError, match="image tokens"):
        check_image_tokens(model, wrong, record)


def test_generation_restores_the_padding_side_when_the_processor_fails():
    lm_tok = tiny_lm_tokenizer()
    model = tiny_llava(len(lm_tok), lm_tok.convert_tokens_to_ids("<image>"))
    processor = tiny_processor(lm_tok)
    vocab = add_perception_tokens(model, lm_tok, tokenizers())
    lm_tok.padding_side = "right"
    image = build_records(synthetic_samples(1, size=(64, 80)), **tokenizers(), tasks=["counting_direct"])[0]["image"]
    with pytest.raises(ValueError):  # two prompts, one image
        generate_with_perception(model, processor, vocab, [image], ["<image>\nHow many?", "<image>\nHow many?"])
    assert lm_tok.padding_side == "right"


def test_task_losses_are_each_records_answer_loss_averaged_per_task():
    """The temperature schedule's per-task losses: each record's mean cross-entropy over its own
    answer tokens (label t scored by the logits at t - 1), averaged over the records of a task;
    records without an answer token and tasks not seen are left out."""
    from accelerate import Accelerator

    from perceptok_llava.losses import TaskLosses

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 9, 30, generator=g)
    labels = torch.full((4, 9), -100)
    labels[0, 5:8] = torch.tensor([3, 4, 5])
    labels[1, 2:9] = torch.randint(0, 30, (7,), generator=g)
    labels[3, 8] = 7
    losses = TaskLosses(["a", "b", "c"], torch.device("cpu"))
    losses.add(logits, labels, torch.tensor([0, 1, 0, 0]))

    def record(i):
        at = (labels[i] != -100).nonzero().flatten()
        return float(torch.nn.functional.cross_entropy(logits[i, at - 1], labels[i, at]))

    means = losses.reduce(Accelerator(cpu=True))
    assert set(means) == {"a", "b"}  # c unseen; record 2 has no answer and does not count for a
    assert means["a"] == pytest.approx((record(0) + record(3)) / 2) and means["b"] == pytest.approx(record(1))
    assert losses.reduce(Accelerator(cpu=True)) == {}  # reset after reading


def test_loader_workers_default_to_four_on_a_gpu_within_the_cpus_of_each_process(monkeypatch):
    """Workers prepare batches on a GPU machine (4, at most the CPUs each local process has, less
    one for the process itself); on a CPU the model needs the cores; an explicit number wins."""
    import os

    from perceptok_llava.train import loader_workers

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert loader_workers(None) == 0 and loader_workers(3) == 3
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert loader_workers(None) == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # 8 GPUs' processes on 16 CPUs: 2 each
    assert loader_workers(None) == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert loader_workers(None) == 0
