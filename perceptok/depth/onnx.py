"""``perceptok export depth --onnx``: a depth tokenizer's networks as two ONNX graphs.

- ``encoder.onnx``: ``x`` float32 ``(B, C, H, W)`` → ``ids`` int64 ``(B, h, w)``.
- ``decoder.onnx``: ``ids`` int64 ``(B, h, w)`` → ``depth`` float32 ``(B, 1, H', W')``,
  relative inverse depth in [0, 1] (1 = nearest).

Batch and spatial axes are dynamic, so one pair serves every grid (10×10, 5×20, …); tokens are
``ids`` flattened row-major. What runs around them (``export.json`` names it too) is what
``DepthTokenizer.encode``/``decode`` do in torch: before the encoder, ``normalize_depth`` (valid
pixels → inverse depth → 2nd–98th percentiles → [0, 1]), push-pull hole filling, an
anti-aliased resize to ``grid × cell_size`` and ``[rel * 2 - 1, valid]`` as the two channels
(one channel, ``rel * 2 - 1``, for the aurora architecture); after the decoder, a resize to the
size wanted and, for depth in the input's units, ``from_inverse(rel * (high - low) + low)``.

Exported with the TorchScript exporter (``dynamo=False``): it needs no extra package and keeps
the graph to plain convolutions, so onnxruntime reproduces the ids exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from einops import rearrange
from torch import nn
from vector_quantize_pytorch import FSQ

from perceptok.checkpoint import atomic_folder
from perceptok.depth.tokenizer import DepthTokenizer

OPSET = 17


class OnnxEncoder(nn.Module):
    """Network input → ids, with the quantiser written out as plain tensor ops."""

    def __init__(self, tok: DepthTokenizer):
        super().__init__()
        self.model = tok.model
        quantizer = tok.model.quantizer
        self.fsq = isinstance(quantizer, FSQ)
        if not self.fsq:  # VectorQuantize: nearest code, as its forward finds it
            self.project_in = quantizer.project_in
            self.cosine = bool(getattr(quantizer, "use_cosine_sim", False))
            self.register_buffer("codebook", quantizer.codebook.detach().float().clone())  # (K, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = rearrange(self.model.net.encode(x), "b d h w -> b h w d")
        if self.fsq:  # FSQ.quantize + codes_to_indices: bounded, rounded, mixed-radix index
            fsq = self.model.quantizer
            levels = fsq._levels.float()
            half_l = (levels - 1) * (1 + 1e-3) / 2
            offset = torch.where(fsq._levels % 2 == 0, 0.5, 0.0)
            bounded = torch.tanh(z + torch.atanh(offset / half_l)) * half_l - offset
            return ((torch.round(bounded) + fsq._levels // 2) * fsq._basis).sum(-1).long()
        z = self.project_in(z)
        codes = self.codebook
        if self.cosine:  # the largest cosine similarity
            return (nn.functional.normalize(z, dim=-1) @ nn.functional.normalize(codes, dim=-1).t()).argmax(-1)
        distance = (z * z).sum(-1, keepdim=True) - 2 * z @ codes.t() + (codes * codes).sum(-1)  # (B, h, w, K)
        return distance.argmin(-1)


class OnnxDecoder(nn.Module):
    """Ids → relative inverse depth at the decoder's resolution, through a table of every code."""

    def __init__(self, tok: DepthTokenizer):
        super().__init__()
        self.net = tok.model.net
        self.register_buffer("table", tok.model.all_codes().detach().float().clone())  # (K, D)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        z = rearrange(self.table[ids], "b h w d -> b d h w")
        return self.net.decode(z).clamp(0, 1)


def _atanh(g, x):  # the TorchScript exporter has no mapping for atanh; ONNX has the op (opset 9)
    return g.op("Atanh", x)


def export_onnx(tok: DepthTokenizer, out: str | Path) -> Path:
    """Write ``encoder.onnx``, ``decoder.onnx`` and ``export.json`` into ``out`` (atomically, as a folder)."""
    torch.onnx.register_custom_op_symbolic("aten::atanh", _atanh, 9)
    model_device, model_dtype = tok.device, tok.dtype
    tok.to("cpu", torch.float32)
    try:
        grid = tok.config.grids[0]
        h, w = tok.default_size(grid)
        encoder, decoder = OnnxEncoder(tok).eval(), OnnxDecoder(tok).eval()
        x = torch.zeros(2, tok.model.in_channels, h, w)
        ids = torch.zeros(2, *grid, dtype=torch.long)

        def write(folder: Path) -> None:
            with torch.no_grad():
                torch.onnx.export(encoder, (x,), folder / "encoder.onnx", input_names=["x"], output_names=["ids"],
                                  dynamic_axes={"x": {0: "B", 2: "H", 3: "W"}, "ids": {0: "B", 1: "h", 2: "w"}},
                                  opset_version=OPSET, dynamo=False)
                torch.onnx.export(decoder, (ids,), folder / "decoder.onnx", input_names=["ids"], output_names=["depth"],
                                  dynamic_axes={"ids": {0: "B", 1: "h", 2: "w"}, "depth": {0: "B", 2: "H", 3: "W"}},
                                  opset_version=OPSET, dynamo=False)
            info = {"tokenizer_type": tok.tokenizer_type, "config": tok.config.to_dict(), "opset": OPSET,
                    "grids": [list(g) for g in tok.config.grids], "cell_size": tok.config.cell_size,
                    "input_channels": ["rel * 2 - 1", "valid"][: tok.model.in_channels],
                    "pre": "normalize_depth → fill_holes → antialiased bilinear resize to grid × cell_size",
                    "post": "resize to the wanted size; depth = from_inverse(rel * (high - low) + low, kind)"}
            (folder / "export.json").write_text(json.dumps(info, indent=2), encoding="utf-8")

        return atomic_folder(Path(out), write)
    finally:
        tok.to(model_device, model_dtype)
