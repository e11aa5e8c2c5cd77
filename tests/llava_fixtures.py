"""Tiny, randomly initialised HF models and a tokenizer trained here with the `tokenizers`
library: what the plugin's tests run on (no downloads)."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

CORPUS = ["Which point is closer to the camera? Point A is closer. depth pixel loc DEPTH PIXEL START END "
          "0 1 2 3 4 5 6 7 8 9 10 11 12 120 answer A B C D E how many boxes are there two three"] * 20


def tiny_lm_tokenizer(vocab_size: int = 300):
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>", "<image>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")


def tiny_llama(vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2))


def tiny_llava(vocab_size: int, image_token_id: int):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    text = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=32, patch_size=8)
    return LlavaForConditionalGeneration(LlavaConfig(text_config=text, vision_config=vision,
                                                     image_token_index=image_token_id))


def tiny_llama_with_vocab(tokenizers: dict, seed: int = 0):
    """A tiny random Llama with the perception vocabularies of ``tokenizers`` added:
    (LM tokenizer, model, ``PerceptionVocab``)."""
    import torch

    from perceptok_llava.vocab import add_perception_tokens

    torch.manual_seed(seed)
    lm_tok = tiny_lm_tokenizer()
    model = tiny_llama(len(lm_tok)).eval()
    return lm_tok, model, add_perception_tokens(model, lm_tok, tokenizers)


def short_of_memory(model, every_layer: bool = False) -> list[int]:
    """Make ``model`` raise CUDA's out-of-memory error whenever none of its language model's layers
    is checkpointed (``every_layer``: unless all are), like a GPU too small for its activations;
    returns how many layers were checkpointed at each forward."""
    forward, calls = model.forward, []
    layers = model.model.language_model.layers

    def tight(*args, **kwargs):
        calls.append(sum(bool(getattr(layer, "gradient_checkpointing", False)) for layer in layers))
        if calls[-1] < (len(layers) if every_layer else 1):
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return forward(*args, **kwargs)

    model.forward = tight
    return calls
