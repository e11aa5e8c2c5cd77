"""What curriculum records cost in memory and time, with images held as recipes (shipped: a file's
path, the padding, the marks; ``ImageRecipe``) beside images held decoded (the baseline: what
the sources and ``build_records`` kept before), in the same run, on the real data of
``../shared/data`` (21 RGB-D photos of ``depth/manifest.jsonl`` and 100 VOC photos with boxes,
repeated ``--repeat`` times as if they were more):

- ``build``: ``build_records`` over every sample, each mode in a fresh process: seconds and the
  process's peak memory (``ru_maxrss``), and the records' own size (pickled; for the baseline,
  its distinct decoded images' bytes);
- ``collate``: one batch of 16 records through ``collate`` with llava-hf's 336-px CLIP processor,
  images loaded from their recipes (shipped) or already decoded (baseline): the loading that
  moved into the DataLoader's workers.

Run: ``.venv/bin/python benchmarks/llava_records.py [--repeat 4] [--json]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "tests"))


def specs(repeat: int) -> list[str]:
    return [str(DATA / "depth" / "manifest.jsonl"), str(DATA / "boxes" / "voc100" / "instances.json")] * repeat


def tokenizers():
    from perceptok import BoxTokenizer, PointTokenizer, load

    return load("depth"), BoxTokenizer.from_preset("aurora"), PointTokenizer.from_preset("aurora")


def build(mode: str, repeat: int) -> dict:
    """``build_records`` in this process, images as recipes (``lazy``) or decoded (``decoded``)."""
    from perceptok_llava.cli import load_samples
    from perceptok_llava.data import build_records

    start = time.perf_counter()
    samples = load_samples(specs(repeat), seed=0)
    if mode == "decoded":  # the sources decoded every image, and the records held them
        samples = [dataclasses.replace(s, image=s.image.load()) for s in samples]
    records = build_records(samples, *tokenizers(), seed=0)
    if mode == "decoded":
        loaded = {}
        records = [dict(r, image=loaded.setdefault(id(r["image"]), r["image"].load())) for r in records]
        size = sum(len(im.tobytes()) for im in loaded.values())
    else:
        size = len(pickle.dumps(records))
    seconds = time.perf_counter() - start
    return dict(mode=mode, records=len(records), seconds=round(seconds, 2), records_mib=round(size / 2**20, 2),
                peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def collate_times(rounds: int = 5) -> dict:
    from transformers import CLIPImageProcessor, LlavaProcessor

    from llava_fixtures import tiny_lm_tokenizer
    from perceptok_llava.batches import collate
    from perceptok_llava.cli import load_samples
    from perceptok_llava.data import build_records

    processor = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 336},
                                                                  crop_size={"height": 336, "width": 336}),
                               tokenizer=tiny_lm_tokenizer(vocab_size=2000), patch_size=14,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1)
    records = build_records(load_samples(specs(1)[:1], seed=0), *tokenizers(), seed=0)[:16]
    decoded = [dict(r, image=r["image"].load()) for r in records]
    out = {}
    for name, batch in (("recipes", records), ("decoded", decoded)):
        collate(batch, processor)  # warm-up
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            collate(batch, processor)
            times.append(time.perf_counter() - start)
        out[name] = round(statistics.median(times) * 1000, 1)
    return dict(batch=len(records), ms_recipes=out["recipes"], ms_decoded=out["decoded"],
                ms_loading=round(out["recipes"] - out["decoded"], 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=4, help="times the shared data is read (default 4: 484 samples)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--build", choices=["lazy", "decoded"], help=argparse.SUPPRESS)  # one mode, in a child
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: this benchmark reads the shared real data")
    if args.build:
        print(json.dumps(build(args.build, args.repeat)))
        return
    rows = [json.loads(subprocess.run([sys.executable, __file__, "--build", mode, "--repeat", str(args.repeat)],
                                      check=True, capture_output=True, text=True).stdout)
            for mode in ("lazy", "decoded")]
    result = dict(machine=f"{platform.processor() or platform.machine()}, {len(__import__('os').sched_getaffinity(0))} CPUs",
                  samples=121 * args.repeat, build=rows, collate=collate_times(),
                  records_ratio=round(rows[1]["records_mib"] / rows[0]["records_mib"], 1),
                  build_speedup=round(rows[1]["seconds"] / rows[0]["seconds"], 2))
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['samples']} samples on {result['machine']}")
    for r in rows:
        print(f"  {r['mode']:8} {r['records']} records  {r['records_mib']:8.2f} MiB of records  "
              f"peak {r['peak_rss_mib']} MiB  {r['seconds']} s")
    c = result["collate"]
    print(f"  records {result['records_ratio']}× smaller, built {result['build_speedup']}× faster; collate of "
          f"{c['batch']}: {c['ms_recipes']} ms from recipes, {c['ms_decoded']} ms from decoded images")


if __name__ == "__main__":
    main()
