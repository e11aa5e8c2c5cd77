"""``perceptok bench depth``: throughput of the depth tokenizer on one device and dtype, the
shipped default beside the original architecture (``aurora``, random weights) in the same run.

Every figure is maps per second, the best of ``repeats`` timed runs that each last at least
``seconds`` (after a warm-up call; CUDA is synchronised around each run):

- ``encode_maps_s`` / ``decode_maps_s``: the networks alone, network input → ids and ids →
  relative map, per batch size;
- ``round_trip_640x480_maps_s``: the whole tokenizer on metric 640×480 maps already on the
  device (normalisation, hole filling, resizing, encoding, decoding to metres);
- ``train_data_maps_s``: the training data pipeline alone (each recipe's own batches);
- ``train_step_maps_s``: a full optimiser step (batch, forward, loss, backward, AdamW).
"""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Callable

import torch

from perceptok.depth.augment import Generators, make_batch
from perceptok.depth.config import PRESETS
from perceptok.depth.data import load_pool
from perceptok.depth.tokenizer import DepthTokenizer
from perceptok.depth.train import reconstruction_loss

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    # Where to run: "cpu", "cuda", "cuda:1", "mps".
    device: str = "cpu"
    # Network precision: "fp32", or "bf16" (weights cast for inference; autocast for training).
    dtype: str = "fp32"
    # Batch sizes of the network figures.
    batch_sizes: tuple[int, ...] = (1, 64, 1024)
    # Maps per call of the round trip (640×480 metric maps).
    round_trip_batch: int = 64
    # Maps per training batch (the same for both architectures, so the figures compare).
    train_batch: int = 256
    # Synthetic scenes rendered for the data and training figures.
    scenes: int = 32
    # Each timed run lasts at least this long; the best of `repeats` runs is reported.
    seconds: float = 1.0
    repeats: int = 3

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if not self.batch_sizes or min(self.batch_sizes) < 1 or min(self.round_trip_batch, self.train_batch, self.scenes) < 1:
            raise ValueError("batch sizes and the scene count must be positive")
        try:
            torch.empty(0, device=self.device)
        except (RuntimeError, AssertionError) as err:
            raise ValueError(f"device {self.device!r} is not available here ({str(err).splitlines()[0]}); "
                             "use --device cpu, or run where that device exists") from err


def _rate(fn: Callable[[], object], maps: int, cfg: BenchConfig) -> float:
    """Maps per second of ``fn``, which handles ``maps`` maps per call."""
    device = torch.device(cfg.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    best = 0.0
    for _ in range(cfg.repeats):
        calls, started = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            sync()
            elapsed = time.perf_counter() - started
            if elapsed >= cfg.seconds:
                break
        best = max(best, calls * maps / elapsed)
    return round(best, 1)


def _tokenizer(name: str) -> DepthTokenizer:
    if name == "default":
        import perceptok

        return perceptok.load("depth")
    torch.manual_seed(0)
    return DepthTokenizer.from_preset("aurora")


@torch.no_grad()
def _network_figures(tok: DepthTokenizer, cfg: BenchConfig) -> dict:
    grid = tok.config.grids[0]
    h, w = tok.default_size(grid)
    device = torch.device(cfg.device)
    encode, decode = {}, {}
    for b in cfg.batch_sizes:
        x = torch.rand(b, tok.model.in_channels, h, w, device=device) * 2 - 1
        ids = torch.randint(0, tok.config.codebook_size, (b, tok.tokens_per_map), device=device)
        encode[str(b)] = _rate(lambda: tok.model.encode_ids(x), b, cfg)
        decode[str(b)] = _rate(lambda: tok.model.decode_codes(tok.model.codes(ids), grid), b, cfg)
    return {"encode_maps_s": encode, "decode_maps_s": decode}


def _round_trip(tok: DepthTokenizer, cfg: BenchConfig) -> float:
    g = torch.Generator(device=cfg.device).manual_seed(0)
    rows = torch.linspace(6.0, 0.8, 480, device=cfg.device)[:, None]
    depth = rows + torch.rand(cfg.round_trip_batch, 480, 640, generator=g, device=cfg.device)  # (B, 480, 640) metres
    depth[:, ::7, ::5] = 0.0  # missing measurements, as in real maps

    def run():
        enc = tok.encode(depth)
        return tok.decode(enc.ids, stats=enc.stats)

    return _rate(run, cfg.round_trip_batch, cfg)


def _training_figures(name: str, cfg: BenchConfig, pool) -> dict:
    tok_cfg = PRESETS[name]
    augment = name == "default"  # the aurora recipe trains on whole frames
    gens = Generators.seeded(0, cfg.device)
    data = _rate(lambda: make_batch(pool, tok_cfg, cfg.train_batch, gens, augment=augment), cfg.train_batch, cfg)
    torch.manual_seed(0)
    model = DepthTokenizer(tok_cfg).model.to(cfg.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    device_type = torch.device(cfg.device).type
    low = cfg.dtype != "fp32"

    def step():
        batch = make_batch(pool, tok_cfg, cfg.train_batch, gens, augment=augment)
        with torch.autocast(device_type, dtype=DTYPES[cfg.dtype], enabled=low):
            pred, _, commit = model(batch.x)
        loss = reconstruction_loss(pred.float(), batch, commit.float(), "perceptok")
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        opt.step()

    return {"train_data_maps_s": data, "train_step_maps_s": _rate(step, cfg.train_batch, cfg)}


def bench_depth(cfg: BenchConfig, progress: Callable[[str], None] = lambda _: None) -> dict:
    """Every figure of the module docstring for ``default`` and ``aurora``, as one JSON-ready dict."""
    result: dict = {"device": cfg.device, "dtype": cfg.dtype, "torch": torch.__version__,
                    "machine": _machine(cfg.device), "threads": torch.get_num_threads(),
                    "config": dataclasses.asdict(cfg)}
    progress(f"rendering {cfg.scenes} scenes")
    pool = load_pool([f"synthetic:{cfg.scenes}"], cfg.device)
    for name in ("default", "aurora"):
        progress(f"{name}: networks")
        tok = _tokenizer(name).to(cfg.device, DTYPES[cfg.dtype])
        figures = _network_figures(tok, cfg)
        progress(f"{name}: 640×480 round trip")
        figures["round_trip_640x480_maps_s"] = _round_trip(tok, cfg)
        progress(f"{name}: training")
        figures.update(_training_figures(name, cfg, pool))
        result[name] = figures
    return result


def _machine(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
