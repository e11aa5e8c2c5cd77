"""Trainable parameters and saved adapter bytes at LLaVA-1.5-7B shapes, measured on the meta
device (no weights are allocated): perceptok's default recipe beside the original's.

- default: LoRA r=64 on the LM's linear layers, trainable_token_indices for the new rows of
  embed_tokens and lm_head, the projector trained (modules_to_save);
- original: LoRA r=128 on the LM's linear layers, the whole embed_tokens and lm_head trained, the
  projector trained.

Run: ``.venv/bin/python benchmarks/adapter_size.py``
"""

from __future__ import annotations

import json

import torch
from peft import LoraConfig, get_peft_model
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from perceptok_llava.train import LM_LINEAR

BASE_TOKENS = 32002  # llava-hf/llava-1.5-7b-hf: 32000 + <image> + <pad>, rows padded to 32064
NEW_TOKENS = 130 + 336  # depth codes + delimiters, and <PIXEL_0..335> (shared by boxes and points)


def llava_7b() -> LlavaForConditionalGeneration:
    text = LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32)
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              image_size=336, patch_size=14, projection_dim=768)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(LlavaConfig(text_config=text, vision_config=vision, image_token_index=32000))
        # The new tokens fill the 62 padding rows, then the matrices grow.
        model.resize_token_embeddings(BASE_TOKENS + NEW_TOKENS, mean_resizing=False)
    return model


def measure(recipe: str) -> dict:
    model = llava_7b()
    new_ids = list(range(BASE_TOKENS, BASE_TOKENS + NEW_TOKENS))
    if recipe == "default":
        cfg = LoraConfig(r=64, lora_alpha=128, target_modules=LM_LINEAR, modules_to_save=["multi_modal_projector"],
                         trainable_token_indices={"embed_tokens": new_ids, "lm_head": new_ids})
    else:
        cfg = LoraConfig(r=128, lora_alpha=256, target_modules=LM_LINEAR,
                         modules_to_save=["multi_modal_projector", "embed_tokens", "lm_head"])
    peft_model = get_peft_model(model, cfg)
    trainable = {n: p.numel() for n, p in peft_model.named_parameters() if p.requires_grad}
    total = sum(trainable.values())
    parts = {
        "lora": sum(v for n, v in trainable.items() if "lora_" in n),
        "token_rows_or_matrices": sum(v for n, v in trainable.items() if "embed_tokens" in n or "lm_head" in n),
        "projector": sum(v for n, v in trainable.items() if "multi_modal_projector" in n),
    }
    return {"recipe": recipe, "trainable_params": total, "adapter_bytes_bf16": 2 * total, **parts}


if __name__ == "__main__":
    for recipe in ("default", "original"):
        print(json.dumps(measure(recipe)))
