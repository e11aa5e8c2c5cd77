"""GPU smoke test of the LLaVA plugin, for a lent GPU: a randomly initialised model of
LLaVA-1.5-7B shapes (bf16), the default recipe (LoRA r=64 + new token rows + projector) for a
few curriculum steps on synthetic scenes (gradient checkpointing "auto": the interval it chose; a
quarter of the scenes held out and scored at each stage's end; one resumable checkpoint); then
training throughput without checkpointing at batch 2, 8, 16 and 32 and with every layer checkpointed
at 16, then (while the generation table's time is left) without LoRA dropout at 16 and 32, with
16 records packed two a row, and with logits at every position at 16 (tokens/s without padding, MFU
and peak memory, median of 3 steps after a warm-up; "out_of_memory" where it does not fit),
where the time of a training step at batch 16 goes (torch.profiler: matrix products, attention,
optimiser, the rest, and the device's idle share), constrained generation of a depth map (strictly
well formed, tokens/s, peak memory), the constraint's own step at batch 1 and 8 after a 700-token
prompt (ms a step; on CUDA under torch's sync debug mode set to raise, so a step that waits for
the GPU is reported as an error), and the generation table of issue 13 (plain vs constrained;
the unmerged adapter at batch 1; the merged model at batch 1 and 8, eager and with transformers'
static KV cache, which it compiles with CUDA graphs on a GPU; median of 3 after a warm-up). Prints
one JSON line per phase; a phase that fails prints its error and the run goes on; phases past
``--budget`` seconds are reported as skipped.

    python benchmarks/gpu_smoke.py --budget 330   # 7B shapes, on CUDA
    python benchmarks/gpu_smoke.py --tiny         # the same code path with a tiny model (CPU is fine)

No network is needed: the LM tokenizer is trained on the spot with the tokenizers library.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from llava_fixtures import tiny_lm_tokenizer  # noqa: E402
import perceptok  # noqa: E402
from perceptok import BoxTokenizer, PointTokenizer, load  # noqa: E402
from perceptok_llava.data import build_records  # noqa: E402
from perceptok_llava.sources import synthetic_samples  # noqa: E402
from perceptok_llava.generate import generate_with_perception  # noqa: E402
from perceptok_llava.images import load_image  # noqa: E402
from perceptok_llava.constrain import PerceptionLogitsProcessor  # noqa: E402
from perceptok_llava.checkpointing import set_checkpointing  # noqa: E402
from perceptok_llava.batches import chat, collate, training_batch  # noqa: E402
from perceptok_llava.train import LlavaTrainConfig, train_llava  # noqa: E402


def build(tiny: bool, device: torch.device):
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    lm_tok = tiny_lm_tokenizer(vocab_size=2000)
    image_token = lm_tok.convert_tokens_to_ids("<image>")
    if tiny:
        text = LlamaConfig(vocab_size=len(lm_tok) + 64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=4)
        vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  image_size=56, patch_size=14)
        side, patch = 56, 14
    else:  # llava-hf/llava-1.5-7b-hf shapes
        text = LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                           num_attention_heads=32, num_key_value_heads=32)
        vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                                  image_size=336, patch_size=14, projection_dim=768)
        side, patch = 336, 14
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with torch.device(device):
        model = LlavaForConditionalGeneration(LlavaConfig(text_config=text, vision_config=vision,
                                                          image_token_index=image_token)).to(dtype)
    processor = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": side},
                                                                  crop_size={"height": side, "width": side}),
                               tokenizer=lm_tok, patch_size=patch, vision_feature_select_strategy="default",
                               num_additional_image_tokens=1)
    return model, processor


PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16, for MFU


def _median_seconds(fn, device: torch.device, repeats: int = 3) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def _training_step(model, processor, records, device: torch.device, batch: int, per_row: int = 1,
                   all_logits: bool = False):
    """One optimiser step of the trained adapter at ``batch`` records, ``per_row`` packed in a row
    (a callable), its tokens (padding not counted) and its token slots (padding counted). The
    batch is training's (logits only from the first answer on); ``all_logits``: at every position."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    chosen = [records[i % len(records)] for i in range(batch)]
    inputs = collate(chosen, processor, per_row=per_row) if all_logits else training_batch(chosen, processor, None, per_row)
    real = inputs["attention_mask"] if per_row == 1 else inputs.pop("segment") >= 0
    tokens, slots = int(real.sum()), real.numel()
    inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model(**inputs, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, tokens, slots


def train_throughput(model, processor, records, device: torch.device, batch: int, repeats: int, per_row: int = 1,
                     all_logits: bool = False) -> dict:
    """Optimiser steps of the trained adapter at ``batch``: tokens/s and MFU (6 × parameters ×
    tokens over the GPU's dense bf16 peak), median of ``repeats`` steps after a warm-up."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step, tokens, slots = _training_step(model, processor, records, device, batch, per_row, all_logits)
    seconds = _median_seconds(step, device, repeats)
    n = sum(p.numel() for p in model.parameters())
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else ""
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in gpu), None)
    return {"phase": "train_throughput", "batch": batch, "tokens": tokens, "padding": round(1 - tokens / slots, 4),
            "s_per_step": round(seconds, 3),
            "tokens_per_s": round(tokens / seconds, 1),
            "mfu": round(6 * n * tokens / seconds / (peak * 1e12), 3) if peak else None,
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if device.type == "cuda" else None}


def set_lora_dropout(model, p: float) -> None:
    """Every LoRA layer's dropout probability; at 0 peft's identity, which copies nothing (a
    dropout keeps a copy of each adapted layer's input and its mask for the backward pass)."""
    from peft.tuners.lora import LoraLayer

    for module in model.modules():
        if isinstance(module, LoraLayer):
            for name in module.lora_dropout:
                module.lora_dropout[name] = torch.nn.Dropout(p) if p > 0 else torch.nn.Identity()


KERNEL_KINDS = (("matmul", ("gemm", "xmma", "cutlass", "nvjet", "sm90", "addmm", "aten::mm", "aten::bmm")),
                ("attention", ("fmha", "flash", "attention", "efficient")),
                ("optimizer", ("adam", "foreach", "multi_tensor")))


def train_profile(model, processor, records, device: torch.device, batch: int) -> dict:
    """Where the time of two training steps at ``batch`` goes (torch.profiler, after a warm-up):
    the device's busy time by kind of kernel (matrix products, attention, optimiser, the rest),
    its idle share of the wall time, and the ten costliest kernels (on a CPU: operators)."""
    from torch.profiler import ProfilerActivity, profile

    step, tokens, _ = _training_step(model, processor, records, device, batch)
    step()
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        for _ in range(2):
            step()
        if cuda:
            torch.cuda.synchronize()
    wall_ms = (time.perf_counter() - start) * 1e3
    events = [e for e in prof.key_averages() if not cuda or e.device_type == torch.autograd.DeviceType.CUDA]
    rows = [(e.key, (e.self_device_time_total if cuda else e.self_cpu_time_total) / 1e3) for e in events]
    rows = sorted([r for r in rows if r[1] > 0], key=lambda r: -r[1])
    busy = sum(ms for _, ms in rows) if cuda else wall_ms
    kinds = {name: 0.0 for name, _ in KERNEL_KINDS} | {"other": 0.0}
    for key, ms in rows:
        kind = next((name for name, marks in KERNEL_KINDS if any(m in key.lower() for m in marks)), "other")
        kinds[kind] += ms
    return {"phase": "train_profile", "batch": batch, "tokens": tokens, "steps": 2, "wall_ms": round(wall_ms, 1),
            "busy_ms": round(busy, 1), "idle_share": round(max(0.0, 1 - busy / wall_ms), 3),
            "busy_ms_by_kind": {k: round(v, 1) for k, v in kinds.items()},
            "top": [[key[:80], round(ms, 1)] for key, ms in rows[:10]]}


def generation_speed(model, processor, vocab, image, device: torch.device, batch: int, constrained: bool,
                     repeats: int, static: bool = False) -> float:
    """New tokens per second of a 102-token depth answer (median of ``repeats`` after a warm-up;
    ``static``: transformers' static KV cache, which it compiles with CUDA graphs on a GPU)."""
    lm_tok = processor.tokenizer
    side, lm_tok.padding_side = lm_tok.padding_side, "left"
    try:
        inputs = processor(text=[chat("<image>\nWhat is the depth map of this image?") + " <DEPTH_START>"] * batch,
                           images=[image] * batch, return_tensors="pt", padding=True)
    finally:
        lm_tok.padding_side = side
    inputs = {k: v.to(device) for k, v in inputs.items()}
    extra = {"logits_processor": [PerceptionLogitsProcessor(vocab, lm_tok)]} if constrained else {}
    if static:
        extra["cache_implementation"] = "static"

    def run():
        model.generate(**inputs, max_new_tokens=102, min_new_tokens=102, do_sample=False,
                       pad_token_id=lm_tok.pad_token_id, **extra)

    return round(batch * 102 / _median_seconds(run, device, repeats), 1)


class Budget:
    """Seconds left for the run: a phase that would start after ``seconds`` is skipped (and says
    so) instead of losing the lines already printed to an outside timeout."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()


STARTED = time.perf_counter()


def emit(**values) -> None:
    """One JSON line, with the seconds since the start (to plan the next device run)."""
    print(json.dumps({**values, "at_s": round(time.perf_counter() - STARTED, 1)}), flush=True)


def measured(budget: Budget, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or a short reason where time ran out or the phase failed (one
    broken phase on a lent GPU must not cost the figures of the others)."""
    if budget.left() <= 0:
        return "skipped: out of time"
    try:
        return fn(*args, **kwargs)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return "out_of_memory"
    except Exception as e:  # noqa: BLE001 - reported, and the run goes on
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--out", default="/tmp/perceptok_gpu_smoke")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds; later phases are skipped past it")
    args = parser.parse_args()
    budget = Budget(args.budget)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    model, processor = build(args.tiny, device)
    emit(phase="build", device=str(device), gpu=torch.cuda.get_device_name() if device.type == "cuda" else None,
         torch=torch.__version__, transformers=__import__("transformers").__version__,
         params=sum(p.numel() for p in model.parameters()), seconds=round(time.perf_counter() - started, 1))
    tokenizers = {"depth": load("depth"), "boxes": BoxTokenizer.from_preset("aurora"), "points": PointTokenizer.from_preset("aurora")}
    records = build_records(synthetic_samples(8, size=(240, 320)), tokenizers["depth"], tokenizers["boxes"], tokenizers["points"])
    # checkpointing "auto"; 2 of the 8 scenes held out and scored at each stage's end; a checkpoint
    # (accelerate's save_state of the trained weights and AdamW) at the end of the first stage
    cfg = LlavaTrainConfig(out=args.out, batch_size=2, stages=2, samples_per_stage=2 * args.steps, val_fraction=0.25,
                           save_every=args.steps, resume=False, overwrite=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    result = train_llava(model, processor, tokenizers, records, cfg, progress=False)
    train_s = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    emit(phase="train", steps=len(result["losses"]), losses=[round(x, 3) for x in result["losses"]],
         s_per_step=round(train_s / len(result["losses"]), 2), peak_gib=peak,
         gradient_checkpointing=result["gradient_checkpointing"], padding=round(result["padding"], 4),
         held_out_loss=round(result["held_out_loss"], 3), complete=result["complete"])
    model, vocab, image = result["model"], result["vocab"], load_image(records[0]["image"])
    # no checkpointing where memory allows (what "auto" picks) and every layer checkpointed for
    # comparison; then, while the generation table's time (about 220 s at 7B shapes) is left, LoRA
    # without dropout (the default's 0.05 keeps copies of activations), records packed two a row,
    # and (as before training kept logits from the first answer on) logits at every position
    shapes = [(0, 2, 0.05, 1, False), (1, 2, 0.05, 1, False)] if args.tiny else \
        [(0, 2, 0.05, 1, False), (0, 8, 0.05, 1, False), (0, 16, 0.05, 1, False), (0, 32, 0.05, 1, False),
         (1, 16, 0.05, 1, False)]
    extra = [(0, 2, 0.0, 1, False), (0, 4, 0.05, 2, False), (0, 2, 0.05, 1, True)] if args.tiny else \
        [(0, 16, 0.0, 1, False), (0, 32, 0.0, 1, False), (0, 16, 0.05, 2, False), (0, 16, 0.05, 1, True)]
    reserve = 0.0 if args.tiny else 220.0
    for k, (checkpointing, batch, dropout, per_row, all_logits) in enumerate(shapes + extra):
        set_checkpointing(model, checkpointing)
        set_lora_dropout(model, dropout)
        row = "skipped: the generation table's time" if k >= len(shapes) and budget.left() < reserve else \
            measured(budget, train_throughput, model, processor, records, device, batch,
                     repeats=1 if args.tiny else 3, per_row=per_row, all_logits=all_logits)
        emit(**(row if isinstance(row, dict) else {"phase": "train_throughput", "batch": batch, "error": row}),
             checkpointing=checkpointing, lora_dropout=dropout, per_row=per_row, all_logits=all_logits)
    set_checkpointing(model, 0)
    set_lora_dropout(model, 0.05)
    row = measured(budget, train_profile, model, processor, records, device, 2 if args.tiny else 16)
    emit(**(row if isinstance(row, dict) else {"phase": "train_profile", "error": row}))
    model.eval()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for batch in (1, 4):
        row = measured(budget, constrained_depth, model, processor, vocab, image, device, batch)
        emit(**(row if isinstance(row, dict) else {"phase": "generate", "batch": batch, "error": row}))
    for batch in (1, 8):
        row = measured(budget, constraint_step, vocab, processor, device, batch)
        emit(**(row if isinstance(row, dict) else {"phase": "constraint_step", "batch": batch, "error": row}))
    repeats = 1 if args.tiny else 3
    table: dict[str, float | str] = {}
    # unmerged at batch 1 first (merging unloads the adapter), then the merged model: the goal
    # (batch 1, constrained, static cache) before the rest, so that a short budget still measures it;
    # each figure is printed as soon as it is measured
    runs = [(False, False, 1, False), (False, False, 1, True), (True, True, 1, True), (True, False, 1, True),
            (True, False, 1, False), (True, True, 1, False)]
    runs += [(True, static, 8, c) for static in (False, True) for c in (True, False)]
    for merged, static, batch, constrained in runs:
        if merged and hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload().eval()
        key = (f"{'merged' if merged else 'unmerged'}/{'constrained' if constrained else 'plain'}"
               f"{'/static' if static else ''}/batch{batch}")
        table[key] = measured(budget, generation_speed, model, processor, vocab, image, device, batch, constrained,
                              repeats, static=static)
        emit(phase="generation", run=key, tokens_per_s=table[key])
    emit(phase="generation_table", tokens_per_s=table)
    emit(phase="done", seconds=round(time.perf_counter() - started, 1))


def constraint_step(vocab, processor, device: torch.device, batch: int, steps: int = 50) -> dict:
    """``PerceptionLogitsProcessor`` alone for ``steps`` steps into a depth span after a 700-token
    prompt, on logits as wide as LLaVA-1.5's: ms a step (the prompt's first reading left out).
    On CUDA the steps run under ``torch.cuda.set_sync_debug_mode("error")``: any host sync raises."""
    lm_tok = processor.tokenizer
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 200, (batch, 700), generator=g).to(device)
    ids[:, -1] = vocab.delimiters["depth"]["start"]
    codes = torch.tensor(vocab.lm_ids["depth"], device=device)
    scores = torch.zeros(batch, max(32064, len(lm_tok)), device=device)
    proc = PerceptionLogitsProcessor(vocab, lm_tok)
    proc(ids, scores)
    steps_ids = [torch.cat([ids, codes[:k].expand(batch, k)], 1) for k in range(1, steps + 1)]
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
    try:
        t = time.perf_counter()
        for step_ids in steps_ids:
            out = proc(step_ids, scores)
    finally:
        if cuda:
            torch.cuda.set_sync_debug_mode("default")
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    allowed = torch.isfinite(out).sum(1)  # the last step, inside the span: only codes (and no end yet)
    return {"phase": "constraint_step", "batch": batch, "ms_per_step": round(seconds / steps * 1000, 3),
            "host_syncs": 0 if cuda else None, "codes_only": bool((allowed == len(codes)).all())}


def constrained_depth(model, processor, vocab, image, device: torch.device, batch: int) -> dict:
    """One constrained depth answer per image: strictly well formed?, tokens/s, peak memory."""
    t = time.perf_counter()
    outs = generate_with_perception(model, processor, vocab, [image] * batch,
                                    ["<image>\nWhat is the depth map of this image?"] * batch,
                                    start_with="<DEPTH_START>", max_new_tokens=102, do_sample=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    depth = vocab.tokenizers["depth"]
    return {"phase": "generate", "batch": batch,
            "well_formed": all(_strict_span(depth, o.text) and len(o.depth) == 1 for o in outs),
            "tokens_per_s": round(batch * 102 / seconds, 1),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None}


def _strict_span(depth, text: str) -> bool:
    """The first depth span parses strictly: the start token, exactly 100 codes, the end token."""
    if "<DEPTH_END>" not in text:
        return False
    try:
        depth.parse(text[text.index("<DEPTH_START>") : text.index("<DEPTH_END>") + len("<DEPTH_END>")].replace(" ", ""))
    except (perceptok.TokenParseError, ValueError):
        return False
    return True


if __name__ == "__main__":
    main()
