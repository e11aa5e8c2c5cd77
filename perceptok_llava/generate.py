"""``generate_with_perception``: constrained generation, then the perception spans parsed back
into depth maps and boxes, and the final answer."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import torch

from perceptok.coordinates import CoordinateTokenizer
from perceptok.depth import GridDepthTokenizer
from perceptok.depth.resample import resize
from perceptok_llava.batches import chat, expand_image_tokens
from perceptok_llava.constrain import PerceptionLogitsProcessor
from perceptok_llava.images import SquareFrame, load_image
from perceptok_llava.vocab import PerceptionVocab


@dataclasses.dataclass
class PerceptionOutput:
    """One generated answer.

    Attributes:
        text: the generated text, perception tokens included.
        depth: one relative inverse depth map ``(H, W)`` per complete depth span (1 = nearest).
        boxes: per coordinate tokenizer name, ``(N, 4)`` (or ``(N, 2)`` points) normalised to [0, 1].
        answer: the text after the last perception token, stripped.
    """

    text: str
    depth: list[torch.Tensor]
    boxes: dict[str, torch.Tensor]
    answer: str


def parse_perception(text: str, vocab: PerceptionVocab, depth_size: tuple[int, int] | None = None,
                     frame: SquareFrame | None = None) -> PerceptionOutput:
    """Read depth maps, boxes and the answer out of generated text (leniently, as model output).
    With the ``frame`` of an image that was padded to a square, boxes and depth maps are given in
    the image's own frame (depth maps at its size unless ``depth_size`` says otherwise)."""
    depth_maps: list[torch.Tensor] = []
    boxes: dict[str, torch.Tensor] = {}
    for name, tok in vocab.tokenizers.items():
        if isinstance(tok, GridDepthTokenizer):
            pattern = re.escape(tok.start_token) + r"(.*?)" + re.escape(tok.end_token)
            for span in re.finditer(pattern, text, flags=re.S):
                parsed = tok.parse(span.group(0).replace(" ", ""), strict=False)  # ids and the span's grid
                if frame is None:
                    depth_maps.append(tok.decode(parsed, size=depth_size))
                    continue
                image_part = frame.crop(tok.decode(parsed, size=(frame.side, frame.side)))  # (h, w)
                depth_maps.append(image_part if depth_size is None else
                                  resize(image_part[None, None], tuple(depth_size))[0, 0])
        elif isinstance(tok, CoordinateTokenizer):
            parsed = tok.parse(text, strict=False)
            if len(parsed.ids):
                found = tok.decode(parsed.ids)
                boxes[name] = found if frame is None else frame.to_original(found)
    last = max((m.end() for m in re.finditer(r"<[A-Za-z_]+\d*>|[)\]]", text)), default=0)
    answer = re.sub(r"^[\s:.,]+", "", text[last:]).strip() or text.strip()
    return PerceptionOutput(text, depth_maps, boxes, answer)


def answer_prompt(prompt: str, start_with: str | None = None) -> str:
    """The text a generated answer follows: the prompt in LLaVA-1.5's format and ``start_with``."""
    return chat(prompt) + (f" {start_with}" if start_with else "")


def prompt_tokens(processor: Any, image: Any, prompts: list[str], start_with: str | None = None) -> list[int]:
    """How many tokens each prompt takes with its image's tokens, every image giving as many as
    ``image`` does (LLaVA-1.5: every image is resized to one size): one image processed, the
    prompts tokenised as text."""
    probe = processor(text=[answer_prompt(processor.image_token)], images=[load_image(image)], return_tensors="pt")
    per_image = int((probe["input_ids"] == processor.image_token_id).sum())
    texts = [expand_image_tokens(answer_prompt(p, start_with), processor, per_image) for p in prompts]
    return [len(ids) for ids in processor.tokenizer(texts)["input_ids"]]


@torch.no_grad()
def generate_with_perception(model: Any, processor: Any, vocab: PerceptionVocab, images: list, prompts: list[str],
                             start_with: str | None = None, depth_size: tuple[int, int] | None = None,
                             square: bool = True, static_cache: bool = False, pad_to: int | None = None,
                             **generate_kwargs: Any) -> list[PerceptionOutput]:
    """Generate answers with well-formed perception spans (``PerceptionLogitsProcessor``).

    Args:
        images, prompts: one image (RGB, a file's path or an ``ImageRecipe``) and one prompt (with
            ``<image>``) per answer.
        start_with: text the answer is forced to begin with, e.g. ``"<DEPTH_START>"``.
        depth_size: ``(H, W)`` for decoded depth maps (default: the image's size with ``square``,
            else the tokenizer's).
        square: pad each image to a square as training did (``build_records(square=True)``);
            boxes and depth maps come back in the image's own frame.
        static_cache: decode with transformers' static KV cache; on CUDA (and XPU) transformers
            then compiles the one-token forward with ``torch.compile`` (CUDA graphs, once per
            batch shape), which removes the kernel-launch overhead of eager decoding. The
            constraint runs outside the graph, on the logits. Worth it for many answers of one
            shape; the first call pays the compilation.
        pad_to: pad every prompt (on the left) to this many tokens, so that batches of different
            prompts share one shape and one compilation (``prompt_tokens`` counts them).
        generate_kwargs: passed to ``model.generate`` (``max_new_tokens``, ``num_beams``, ``do_sample``…).
    """
    lm_tok = processor.tokenizer
    side, lm_tok.padding_side = lm_tok.padding_side, "left"
    texts = [answer_prompt(p, start_with) for p in prompts]
    images = [load_image(im) for im in images]
    frames = [SquareFrame(im.width, im.height) if square else None for im in images]
    images = [f.pad_image(im) if f else im for f, im in zip(frames, images)]
    padding = {"padding": "max_length", "max_length": pad_to} if pad_to else {"padding": True}
    try:
        batch = processor(text=texts, images=images, return_tensors="pt", **padding)
    finally:  # the caller's tokenizer keeps its padding side even when the processor raises
        lm_tok.padding_side = side
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    processor_list = [PerceptionLogitsProcessor(vocab, lm_tok)]
    if static_cache:
        generate_kwargs.setdefault("cache_implementation", "static")
    out = model.generate(**batch, logits_processor=processor_list, pad_token_id=lm_tok.pad_token_id, **generate_kwargs)
    results = []
    for row, frame in zip(out[:, batch["input_ids"].shape[1]:].tolist(), frames):
        if lm_tok.eos_token_id in row:
            row = row[: row.index(lm_tok.eos_token_id)]
        row = [t for t in row if t != lm_tok.pad_token_id]
        text = (start_with or "") + lm_tok.decode(row, skip_special_tokens=False)
        results.append(parse_perception(text, vocab, depth_size, frame))
    return results
