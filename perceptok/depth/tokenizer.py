"""``DepthTokenizer``: depth maps ⇄ VQ-VAE codes (AURORA paper §3.1, "depth perception tokens").

Axis legend: ``B`` maps, ``H, W`` pixels, ``N`` tokens per map (100 for the default).

Deviations from the original, each measured in BENCHMARKS.md: masked, outlier-robust
normalisation instead of 8-bit min-max maps; a validity channel and push-pull hole filling
instead of constant fill; aspect-adaptive token grids instead of stretching to a square; FSQ
codes (32 levels × 4 shapes) whose encoder starts as the pooled-grid baseline instead of an EMA
codebook that collapses; a small 40×40 network input and a level + detail decoder instead of
320×320 and a transposed-conv stack, so training takes many more steps in the same time.
"""

from __future__ import annotations

import torch

from perceptok.depth.config import PRESETS, DepthTokenizerConfig
from perceptok.depth.grid import GridDepthTokenizer
from perceptok.depth.model import DepthVQVAE
from perceptok.depth.normalize import work_dtype
from perceptok.depth.resample import compiled_route, model_input
from perceptok.registry import register_tokenizer


@register_tokenizer("depth_vqvae")
class DepthTokenizer(GridDepthTokenizer):
    """Depth maps ⇄ ``<DEPTH_START>`` + N VQ-VAE codes + ``<DEPTH_END>``."""

    config_class = DepthTokenizerConfig

    def __init__(self, config: DepthTokenizerConfig | None = None):
        super().__init__(config if config is not None else DepthTokenizerConfig())
        self.model = DepthVQVAE(self.config).eval()

    @classmethod
    def from_preset(cls, name: str) -> DepthTokenizer:
        """An untrained tokenizer with a preset's architecture (``perceptok.load("depth")`` gives
        the trained default)."""
        if name not in PRESETS:
            raise ValueError(f"unknown depth preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(PRESETS[name])

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> DepthTokenizer:
        """Move the networks to ``device`` and/or cast them to the float ``dtype`` (e.g.
        ``tok.to("cuda", torch.bfloat16)``); normalisation keeps at least float32 either way."""
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point type such as torch.bfloat16, got {dtype}")
        self.model.to(device=device, dtype=dtype)
        return self

    def _features(self, norm, grid):
        size = self.default_size(grid)
        if norm.codes is not None and compiled_route(norm.codes.signed):
            from perceptok.depth.fill_kernel import model_input_codes_cpu  # numba, imported on first use

            return model_input_codes_cpu(norm.codes, size)  # no per-pixel tensor of the maps at all
        return model_input(norm.rel[:, None], norm.valid[:, None], size)  # (b, 2, H, W)

    def _ids(self, features, grid):
        return self.model.encode_ids(features.to(self.device, work_dtype(self.dtype)))  # the networks' precision, ≥ float32

    def _decode_grid(self, ids, grid):
        rel = self.model.decode_codes(self.model.codes(ids.to(self.device)), grid)
        return rel.clamp(0, 1).to(work_dtype(rel.dtype))

    def decode_soft(self, probs: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """Differentiable decoding of code probabilities ``(B, N, K)`` (e.g. an LM's softmax over
        the depth tokens): probability-weighted code vectors through the decoder → relative
        inverse depth ``(B, H', W')`` at the decoder's resolution, in the networks' dtype, on
        ``probs``' device (AURORA §3.3, reconstruction loss)."""
        k = self.config.codebook_size
        if probs.ndim != 3 or probs.shape[1:] != (self.tokens_per_map, k):
            raise ValueError(f"probs must be (B, {self.tokens_per_map}, {k}), got {tuple(probs.shape)}")
        codes = probs.to(self.device, self.dtype) @ self.model.all_codes().to(self.dtype)  # (B, N, D)
        return self.model.decode_codes(codes, grid or self.config.grids[0])[:, 0].to(probs.device)

    # --- weights ----------------------------------------------------------------------------

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.model.state_dict())

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(tensors, strict=True)
        self.model.eval()
