"""Parity of an ONNX export with the torch tokenizer, through onnxruntime on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from perceptok.depth.normalize import normalize_depth
from perceptok.depth.resample import model_input
from perceptok.depth.tokenizer import DepthTokenizer
from perceptok.io.depth_files import DepthMap


def check_onnx(tok: DepthTokenizer, folder: str | Path, maps: list[DepthMap]) -> dict:
    """Encode ``maps`` with the torch tokenizer and with ``folder``'s ONNX graphs (the same pre-
    and post-processing around them); returns ``ids_equal_fraction`` and
    ``max_abs_decode_diff`` (relative inverse depth at the decoder's resolution)."""
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise ImportError("checking an ONNX export needs onnxruntime: pip install 'perceptok[onnx]'") from err
    folder = Path(folder)
    options = dict(providers=["CPUExecutionProvider"])
    encoder = ort.InferenceSession(str(folder / "encoder.onnx"), **options)
    decoder = ort.InferenceSession(str(folder / "decoder.onnx"), **options)
    tok = tok.to("cpu", torch.float32)
    equal = total = 0
    worst = 0.0
    for m in maps:
        norm = normalize_depth(m.values[None], m.kind, m.valid[None])
        grid = tok.config.choose_grid(*m.values.shape)
        x = model_input(norm.rel[:, None], norm.valid[:, None], tok.default_size(grid))[:, : tok.model.in_channels]
        ids = encoder.run(None, {"x": x.numpy()})[0]  # (1, h, w)
        reference = tok.encode(m).ids.reshape(ids.shape).numpy()
        equal += int((ids == reference).sum())
        total += ids.size
        onnx_map = decoder.run(None, {"ids": reference})[0]
        with torch.no_grad():
            torch_map = tok._decode_grid(torch.from_numpy(reference).flatten(1), grid).numpy()
        worst = max(worst, float(np.abs(onnx_map - torch_map).max()))
    return {"maps": len(maps), "ids_equal_fraction": round(equal / max(total, 1), 6), "max_abs_decode_diff": worst}
