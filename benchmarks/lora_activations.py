"""Activation memory that LoRA's dropout adds, per decoder layer at LLaVA-1.5-7B's LM widths
(hidden 4,096, MLP 11,008, 32 heads; bf16; LoRA r=64 on the 7 linear layers, as the default
recipe): the bytes autograd keeps for the backward pass of one layer over 800 tokens (one record:
575 image tokens and the text), the model's own weights left out. A dropout above 0 keeps its
output, a copy of the layer's input, and its mask, for every adapted layer.

Run: ``.venv/bin/python benchmarks/lora_activations.py``   (about half a minute on 2 cores)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perceptok_llava.train import LM_LINEAR  # noqa: E402
from saved_tensors import saved_bytes  # noqa: E402

TOKENS = 800


def kept_bytes(layers: int, dropout: float) -> int:
    """Bytes of the distinct storages autograd saves in a forward pass, parameters excepted."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=1000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=layers,
                         num_attention_heads=32, num_key_value_heads=32)
    model = get_peft_model(LlamaForCausalLM(config).to(torch.bfloat16),
                           LoraConfig(r=64, lora_alpha=128, lora_dropout=dropout, target_modules=LM_LINEAR.replace(
                               ".*language_model.*", ".*")))
    model.train()
    ids = torch.randint(0, 1000, (1, TOKENS), generator=torch.Generator().manual_seed(0))
    with saved_bytes(model) as kept:
        model(input_ids=ids, labels=ids)
    return sum(kept.values())


def main() -> None:
    per_layer = {}
    for dropout in (0.05, 0.0):
        per_layer[dropout] = kept_bytes(2, dropout) - kept_bytes(1, dropout)  # one layer's share, embeddings aside
        print(json.dumps({"lora_dropout": dropout, "tokens": TOKENS, "mib_per_layer": round(per_layer[dropout] / 2**20, 1)}))
    print(json.dumps({"dropout_over_none": round(per_layer[0.05] / per_layer[0.0], 3)}))


if __name__ == "__main__":
    main()
