"""The experiment's model, processor, language tokenizer and question sets, all built here
(nothing is downloaded): a LLaVA from configs, a byte-level BPE tokenizer trained on the
experiment's own text, synthetic scenes for training and testing, and optionally an RGB-D
manifest as a real-image test set.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from perceptok.io import DepthMap
from perceptok_llava.data import build_records, pad_to_square
from perceptok_llava.sources import Sample, manifest_samples, synthetic_samples
from perceptok_llava.experiment.config import POINT_COUNTS, QUESTION_TASKS, ExperimentSize
from perceptok_llava.batches import chat

SPECIAL = ["<unk>", "<s>", "</s>", "<image>", "<pad>"]
_PERCEPTION = re.compile(r"<[A-Z][A-Z_]*\d*>")  # the perception tokens added later as whole tokens
TRAIN_DATA_SEED, TEST_DATA_SEED = 1, 2  # disjoint scene seeds (render seed = data seed × 1,000,003 + i)


def language_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> Any:
    """A byte-level BPE tokenizer trained on ``texts`` (perception tokens removed: they are added
    as whole tokens by ``add_perception_tokens``), with LLaVA's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()  # generated text reads as written, not as "Ġ( B )"
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator((_PERCEPTION.sub(" ", t) for t in texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")


def llava_processor(size: ExperimentSize, lm_tok: Any) -> Any:
    """LLaVA's processor for ``size``'s square input: resize only (the images are already square)."""
    from transformers import CLIPImageProcessor, LlavaProcessor

    side = size.image_side
    images = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    return LlavaProcessor(image_processor=images, tokenizer=lm_tok, patch_size=size.patch,
                          vision_feature_select_strategy="default", num_additional_image_tokens=1)


def llava_model(size: ExperimentSize, lm_tok: Any, seed: int) -> Any:
    """A randomly initialised LLaVA of ``size`` (the same weights for the same seed)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(seed)
    text = LlamaConfig(vocab_size=len(lm_tok), hidden_size=size.lm_hidden, intermediate_size=3 * size.lm_hidden,
                       num_hidden_layers=size.lm_layers, num_attention_heads=size.lm_heads,
                       num_key_value_heads=size.lm_heads, max_position_embeddings=1024,
                       pad_token_id=lm_tok.pad_token_id, bos_token_id=lm_tok.bos_token_id,
                       eos_token_id=lm_tok.eos_token_id)
    vision = CLIPVisionConfig(hidden_size=size.vision_hidden, intermediate_size=4 * size.vision_hidden,
                              num_hidden_layers=size.vision_layers, num_attention_heads=max(1, size.vision_hidden // 32),
                              image_size=size.image_side, patch_size=size.patch)
    config = LlavaConfig(text_config=text, vision_config=vision, image_token_index=lm_tok.convert_tokens_to_ids("<image>"),
                         vision_feature_layer=-1)
    return LlavaForConditionalGeneration(config)


def fit_sample(sample: Sample, side: int) -> Sample:
    """The sample scaled so that its longer side is ``side`` pixels (depth with nearest
    neighbours, so no depth is invented across edges); marks drawn afterwards stay legible to a
    vision tower that sees ``side`` pixels."""
    w, h = sample.image.size
    scale = side / max(w, h)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))  # (H, W)
    image = sample.image.load().resize(size[::-1], Image.Resampling.BICUBIC)
    depth = sample.depth
    if depth is not None:
        values = F.interpolate(depth.values[None, None], size=size, mode="nearest")[0, 0]
        valid = F.interpolate(depth.valid[None, None].to(values.dtype), size=size, mode="nearest")[0, 0] > 0.5
        depth = DepthMap(values, valid, depth.kind, depth.path)
    return dataclasses.replace(sample, image=image, depth=depth, boxes=None, labels=None)


@dataclasses.dataclass
class QuestionSets:
    """Training and test records of one depth tokenizer (records as ``build_records`` makes them).

    Attributes:
        train: depth generation, direct and chain-of-thought records of the training scenes.
        tests: test set name ("synthetic", or "manifest") → direct and chain-of-thought records.
        depth: test sample id → its true depth map, in the frame of its records' images.
    """

    train: list[dict]
    tests: dict[str, list[dict]]
    depth: dict[str, DepthMap]


def _balanced(samples: Sequence[Sample], tokenizers: dict, seed: int, tasks: Sequence[str]) -> list[dict]:
    """Questions with 2, 3, 4 and 5 points in turn (sample i gets POINT_COUNTS[i % 4])."""
    records = []
    for i, k in enumerate(POINT_COUNTS):
        records += build_records(samples[i::len(POINT_COUNTS)], tokenizers["depth"], tokenizers["boxes"],
                                 tokenizers["points"], seed=seed * 10 + k, tasks=tasks, point_counts=(k,))
    return records


def question_sets(size: ExperimentSize, tokenizers: dict, test_manifest: str | Path | None = None) -> QuestionSets:
    """The same scenes, points and questions for every depth tokenizer (marking draws no
    randomness that depends on the tokenizer); only the depth tokens in targets differ."""
    side = (size.image_side, size.image_side)
    train = _balanced(list(synthetic_samples(size.train_scenes, seed=TRAIN_DATA_SEED, size=side)), tokenizers,
                      TRAIN_DATA_SEED, ("depth_generation",) + QUESTION_TASKS)
    test_samples = list(synthetic_samples(size.test_per_count * len(POINT_COUNTS), seed=TEST_DATA_SEED, size=side))
    tests = {"synthetic": _balanced(test_samples, tokenizers, TEST_DATA_SEED, QUESTION_TASKS)}
    real: list[Sample] = []
    if test_manifest is not None:
        real = [fit_sample(s, size.image_side) for s in manifest_samples(test_manifest)]
        if not real:
            raise ValueError(f"{test_manifest} has no entries with an rgb image; a test manifest needs RGB-D pairs")
        # every real map asked with every point count: few maps, so each serves four questions
        tests["manifest"] = [r for k in POINT_COUNTS for r in build_records(
            real, tokenizers["depth"], tokenizers["boxes"], tokenizers["points"], seed=TEST_DATA_SEED * 10 + k,
            tasks=QUESTION_TASKS, point_counts=(k,))]
    depth = {s.id: pad_to_square(s).depth for s in test_samples + real}
    return QuestionSets(train, tests, depth)


def corpus(records: Iterable[dict]) -> list[str]:
    """The conversations the language tokenizer is trained on."""
    return [chat(r["prompt"], r["target"]) for r in records]


def nearest_by_depth(depth: torch.Tensor, points: Sequence[Sequence[float]], letters: str) -> str:
    """The letter whose point has the largest relative inverse depth in ``depth`` ``(H, W)``
    (points in pixels of an image of the same size)."""
    depth = depth.detach().float().cpu()
    h, w = depth.shape
    xy = np.clip(np.asarray(points, np.float64).round().astype(int), 0, [w - 1, h - 1])
    values = depth[torch.as_tensor(xy[:, 1]), torch.as_tensor(xy[:, 0])]
    return letters[int(values.nan_to_num(-1.0).argmax())]
