"""LLaVA training batches: LLaVA-1.5's conversation format, records tokenised with their images and
labels masked to the answer, several records packed end to end in a row, and the records' lengths
in tokens (for batching like lengths together and for the memory trial on the longest batch)."""

from __future__ import annotations

from typing import Any

import torch

from perceptok_llava.images import load_image

IGNORE = -100  # the label of a token the loss skips (the prompt, the image, padding)


def chat(prompt: str, target: str | None = None) -> str:
    """LLaVA-1.5's conversation format."""
    text = f"USER: {prompt} ASSISTANT:"
    return text if target is None else f"{text} {target}"


def training_text(record: dict, lm_tok: Any) -> str:
    """What a record trains on: its prompt and answer in the conversation format, and the end token."""
    return chat(record["prompt"], record["target"]) + lm_tok.eos_token


def expand_image_tokens(text: str, processor: Any, copies: int) -> str:
    """``text`` with each image token repeated ``copies`` times, as the processor writes it before
    tokenising (so that text alone tokenises to the processor's ids)."""
    return text.replace(processor.image_token, processor.image_token * copies)


def collate(records: list[dict], processor: Any, task_names: list[str] | None = None,
            per_row: int = 1) -> dict[str, torch.Tensor]:
    """Tokenise records with their images (loaded here from their recipes, ``load_image``); labels
    cover only the answer (and the end token).
    With ``task_names``, ``task_index`` ``(B,)`` says which task each record is; with
    ``per_row`` > 1 the records are packed (``pack``).

    The images are processed once: the prompts alone are tokenised as text, with each image token
    repeated as often as the processor repeated it in that row."""
    lm_tok = processor.tokenizer
    texts = [training_text(r, lm_tok) for r in records]
    batch = processor(text=texts, images=[load_image(r["image"]) for r in records], return_tensors="pt", padding=True)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    expanded = []
    for i, r in enumerate(records):
        prompt = chat(r["prompt"])
        copies = int((ids[i] == processor.image_token_id).sum()) // max(1, prompt.count(processor.image_token))
        expanded.append(expand_image_tokens(prompt, processor, copies))
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
    return dict(batch) if per_row == 1 else pack(dict(batch), per_row, lm_tok.pad_token_id)


def keep_answer_logits(batch: dict[str, Any]) -> dict[str, Any]:
    """``batch`` (from ``collate``) with the LM head and the loss restricted to where answers are:
    ``logits_to_keep`` = K, the positions from the one before the batch's earliest answer token to
    the end, and ``labels`` cut to those K columns, ``(B, T)`` → ``(B, K)``. The model's logits
    are then ``(B, K, V)`` and line up with the cut labels, so its loss and the losses here read
    them as before; the prompt's columns, its hundreds of image tokens among them, need no logits.
    A packed batch's ``segment`` stays whole, like the inputs. On a host batch: no device sync."""
    labels = batch["labels"]
    answers = (labels != IGNORE).any(0).nonzero()
    first = int(answers[0]) if len(answers) else labels.shape[1]
    keep = labels.shape[1] - max(first - 1, 0)
    return {**batch, "labels": labels[:, -keep:], "logits_to_keep": keep}


def training_batch(records: list[dict], processor: Any, task_names: list[str] | None, per_row: int) -> dict[str, Any]:
    """``collate``'s batch with logits computed only where the losses read them (``keep_answer_logits``)."""
    return keep_answer_logits(collate(records, processor, task_names, per_row))


def answer_tokens(labels: torch.Tensor) -> torch.Tensor:
    """How many tokens of ``labels`` ``(B, T)`` the LM loss counts: those after the first that are
    not ``IGNORE`` (token t predicts t + 1), as a 0-d tensor on their device."""
    return (labels[:, 1:] != IGNORE).sum()


def pack(batch: dict[str, torch.Tensor], per_row: int, pad_id: int) -> dict[str, torch.Tensor]:
    """A padded batch of B records (one image each) → ⌈B / per_row⌉ rows of up to ``per_row``
    records end to end (dealt by ``pack_rows``): rows of nearly even length instead of every record
    padded to the longest.

    ``position_ids`` ``(R, T)`` restart at 0 with every record and ``attention_mask`` is left out,
    so transformers masks attention block by block: a record sees only itself (the model must be
    called with ``use_cache=False``). ``pixel_values`` and ``task_index`` follow the records' new
    order; ``segment`` ``(R, T)`` is each token's record in that order, -1 for padding. Labels never
    cross records: each record starts with its masked prompt."""
    n = batch["input_ids"].shape[0]
    expected = {"input_ids", "attention_mask", "labels", "pixel_values", "task_index"}
    images = batch["pixel_values"].shape[0] if "pixel_values" in batch else 0
    if set(batch) - expected or images != n:
        raise ValueError(f"packing needs one image a record and only the fields {sorted(expected)}; got {images} "
                         f"images for {n} records and the fields {sorted(batch)}: train with one record a row")
    real = batch["attention_mask"].bool()
    lengths = real.sum(1).tolist()
    rows = pack_rows(lengths, per_row)
    order = [i for row in rows for i in row]
    width = max(sum(lengths[i] for i in row) for row in rows)
    shape, cpu = (len(rows), width), torch.device("cpu")  # host tensors, whatever the default device
    out = {"input_ids": torch.full(shape, pad_id, dtype=batch["input_ids"].dtype, device=cpu),
           "labels": torch.full(shape, IGNORE, dtype=batch["labels"].dtype, device=cpu),
           "position_ids": torch.zeros(shape, dtype=torch.long, device=cpu),
           "segment": torch.full(shape, -1, dtype=torch.long, device=cpu)}
    segment = 0
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            k = lengths[i]
            out["input_ids"][r, at : at + k] = batch["input_ids"][i][real[i]]
            out["labels"][r, at : at + k] = batch["labels"][i][real[i]]
            out["position_ids"][r, at : at + k] = torch.arange(k, device=cpu)
            out["segment"][r, at : at + k] = segment
            at, segment = at + k, segment + 1
        out["position_ids"][r, at:] = torch.arange(width - at, device=cpu)  # the padding: a block of its own
    out["pixel_values"] = batch["pixel_values"][order]
    if "task_index" in batch:
        out["task_index"] = batch["task_index"][order]
    return out


def pack_rows(lengths: list[int], per_row: int) -> list[list[int]]:
    """Records (their lengths) dealt into ⌈n / per_row⌉ rows of at most ``per_row``: longest first,
    each to the row with the fewest tokens so far (the rows come out nearly even)."""
    rows: list[list[int]] = [[] for _ in range(-(-len(lengths) // per_row))]
    totals = [0] * len(rows)
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = min((r for r in range(len(rows)) if len(rows[r]) < per_row), key=totals.__getitem__)
        rows[row].append(i)
        totals[row] += lengths[i]
    return rows


def check_image_tokens(model: Any, processor: Any, record: dict) -> None:
    """The processor must expand ``<image>`` into exactly as many tokens as the vision tower gives
    features; ``patch_size``, ``vision_feature_select_strategy`` and ``num_additional_image_tokens``
    out of step make it off by one, which fails late and obscurely."""
    vision = model.config.vision_config
    side = vision.image_size // vision.patch_size
    strategy = getattr(model.config, "vision_feature_select_strategy", "default")
    expected = side * side + (1 if strategy == "full" else 0)
    batch = processor(text=[chat(record["prompt"])], images=[load_image(record["image"])], return_tensors="pt")
    found = int((batch["input_ids"] == model.config.image_token_index).sum())
    if found != expected:
        raise ValueError(
            f"the processor writes {found} image tokens but the vision tower gives {expected} features; set the "
            "processor's patch_size, vision_feature_select_strategy and num_additional_image_tokens to match the model"
        )


def token_lengths(records: list[dict], lm_tok: Any, chunk: int = 8192) -> list[int]:
    """Every record's text in LM tokens: prompt, answer and end token (the image's tokens, the
    same for every record of LLaVA-1.5, are left out); ``chunk`` records a tokenizer call, so
    that a million records never hold all their ids at once."""
    return [len(ids) for start in range(0, len(records), chunk)
            for ids in lm_tok([training_text(r, lm_tok) for r in records[start : start + chunk]])["input_ids"]]


def longest(records: list[dict], lengths: list[int], n: int) -> list[dict]:
    """The ``n`` records with the most tokens: the batch that needs the most memory."""
    return [records[i] for i in sorted(range(len(records)), key=lengths.__getitem__, reverse=True)[:n]]
