"""LLaVA training batches: LLaVA-1.5's conversation format, records tokenised with their images and
labels masked to the answer, and the records' lengths in tokens (for batching like lengths
together and for the memory trial on the longest batch)."""

from __future__ import annotations

from typing import Any

import torch

IGNORE = -100  # the label of a token the loss skips (the prompt, the image, padding)


def chat(prompt: str, target: str | None = None) -> str:
    """LLaVA-1.5's conversation format."""
    text = f"USER: {prompt} ASSISTANT:"
    return text if target is None else f"{text} {target}"


def collate(records: list[dict], processor: Any, task_names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Tokenise records with their images; labels cover only the answer (and the end token).
    With ``task_names``, ``task_index`` ``(B,)`` says which task each record is.

    The images are processed once: the prompts alone are tokenised as text, with each image token
    repeated as often as the processor repeated it in that row."""
    lm_tok = processor.tokenizer
    texts = [chat(r["prompt"], r["target"]) + lm_tok.eos_token for r in records]
    batch = processor(text=texts, images=[r["image"] for r in records], return_tensors="pt", padding=True)
    image_token, ids, mask = processor.image_token, batch["input_ids"], batch["attention_mask"]
    expanded = []
    for i, r in enumerate(records):
        prompt = chat(r["prompt"])
        copies = int((ids[i] == processor.image_token_id).sum()) // max(1, prompt.count(image_token))
        expanded.append(prompt.replace(image_token, image_token * copies))
    prompts = lm_tok(expanded, add_special_tokens=True)["input_ids"]
    labels = ids.clone()
    labels[mask == 0] = IGNORE
    right = lm_tok.padding_side == "right"
    for i, prompt_ids in enumerate(prompts):
        start = 0 if right else int((mask[i] == 0).sum())
        n_prompt = len(prompt_ids)
        if ids[i, start : start + n_prompt].tolist() != prompt_ids:
            raise ValueError(f"record {records[i].get('id', i)!r}: the prompt's tokens are not a prefix of prompt + "
                             "target (the tokenizer merges across the boundary), so the answer cannot be masked "
                             "exactly; start the target with a space or a special token")
        labels[i, start : start + n_prompt] = IGNORE
    batch["labels"] = labels
    if task_names is not None:
        batch["task_index"] = torch.tensor([task_names.index(r["task"]) for r in records], device="cpu")
    return dict(batch)


def check_image_tokens(model: Any, processor: Any, record: dict) -> None:
    """The processor must expand ``<image>`` into exactly as many tokens as the vision tower gives
    features; ``patch_size``, ``vision_feature_select_strategy`` and ``num_additional_image_tokens``
    out of step make it off by one, which fails late and obscurely."""
    vision = model.config.vision_config
    side = vision.image_size // vision.patch_size
    strategy = getattr(model.config, "vision_feature_select_strategy", "default")
    expected = side * side + (1 if strategy == "full" else 0)
    batch = processor(text=[chat(record["prompt"])], images=[record["image"]], return_tensors="pt")
    found = int((batch["input_ids"] == model.config.image_token_index).sum())
    if found != expected:
        raise ValueError(
            f"the processor writes {found} image tokens but the vision tower gives {expected} features; set the "
            "processor's patch_size, vision_feature_select_strategy and num_additional_image_tokens to match the model"
        )


def token_lengths(records: list[dict], lm_tok: Any) -> list[int]:
    """Every record's text in LM tokens: prompt, answer and end token, in one tokenizer call (the
    image's tokens, the same for every record of LLaVA-1.5, are left out)."""
    return [len(ids) for ids in lm_tok([chat(r["prompt"], r["target"]) + lm_tok.eos_token for r in records])["input_ids"]]


def longest(records: list[dict], lengths: list[int], n: int) -> list[dict]:
    """The ``n`` records with the most tokens: the batch that needs the most memory."""
    return [records[i] for i in sorted(range(len(records)), key=lengths.__getitem__, reverse=True)[:n]]
