"""How faithful the curriculum's depth targets are when the maps come from token shards
(``perceptok tokenize depth``, then ``perceptok-llava train --data DIR``) instead of from the maps
themselves: the shards hold tokens, so each map is decoded and re-encoded on the padded square
image (``shard_samples`` → ``build_records``), a reconstruction of a reconstruction, unless the
folder was tokenized with ``--pad-square`` (its tokens are then the targets as they are). On the
21 real maps of ``../shared/data/depth``, padded as training pads them: for shards without and
with ``--pad-square``, the share of target ids that equal the direct path's, and, for each path,
the decoded target against the true map in relative inverse depth (ordinal accuracy of pixel
pairs, mean absolute error).

Run: ``.venv/bin/python benchmarks/llava_shard_targets.py``
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from perceptok import load
from perceptok.cli.main import main as cli
from perceptok.depth.metrics import ordinal_accuracy
from perceptok.depth.normalize import normalize_depth
from perceptok_llava.data import pad_to_square
from perceptok_llava.sources import manifest_samples, shard_samples

MANIFEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "depth" / "manifest.jsonl"


def main() -> None:
    if not MANIFEST.is_file():
        sys.exit(f"{MANIFEST} not found: this benchmark reads the shared real maps")
    tok = load("depth")
    with tempfile.TemporaryDirectory() as tmp:
        for extra in ([], ["--pad-square"]):
            assert cli(["tokenize", "depth", "--manifest", str(MANIFEST), "--out", f"{tmp}/tokens{len(extra)}",
                        "--quiet", *extra]) == 0
        direct = {s.id: pad_to_square(s) for s in manifest_samples(MANIFEST)}
        shards = {s.id: pad_to_square(s) for s in shard_samples(f"{tmp}/tokens0")}
        padded = {s.id: s for s in shard_samples(f"{tmp}/tokens1")}
    same: dict[str, list[float]] = {"shards": [], "padded_shards": []}
    scores: dict[str, list] = {"direct": [], "shards": [], "padded_shards": []}
    for n, (key, sample) in enumerate(direct.items()):
        m = sample.depth
        truth = normalize_depth(m.values.double()[None], m.kind, m.valid[None])
        ok = truth.valid[0]
        ids = {"direct": tok.encode(m).ids, "shards": tok.encode(shards[key].depth).ids,
               "padded_shards": tok.from_text(padded[key].depth_text)}
        for path in same:
            same[path].append(float((ids[path] == ids["direct"]).float().mean()))
        for path, path_ids in ids.items():
            pred = tok.decode(path_ids, size=tuple(m.values.shape)).double()  # relative inverse, 1 = nearest
            hits, pairs = ordinal_accuracy(pred, truth.unclamped()[0], ok, torch.Generator().manual_seed(n))  # same pairs
            scores[path].append((hits / pairs, float((pred[ok] - truth.rel[0][ok]).abs().mean())))
    result: dict = {"maps": len(scores["direct"])}
    for path, equal in same.items():
        result[f"{path}_ids_equal"] = round(float(np.mean(equal)), 3)
    for path, rows in scores.items():
        arr = np.array(rows)
        result[path] = {"ordinal_acc": round(float(arr[:, 0].mean()), 4), "mean_abs_err": round(float(arr[:, 1].mean()), 4)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
