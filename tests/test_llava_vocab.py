"""Perception vocabularies in HF models: a text-only Llama, LLaVA with padded embedding rows,
and a second VLM family (Qwen2-VL)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from llava_fixtures import tiny_llama, tiny_llava, tiny_lm_tokenizer  # noqa: E402
from perceptok import BoxTokenizer, PointTokenizer, PooledDepthTokenizer  # noqa: E402
from perceptok_llava.vocab import PerceptionVocab, add_perception_tokens, describe  # noqa: E402


def perception_tokenizers():
    return {"depth": PooledDepthTokenizer(), "boxes": BoxTokenizer.from_preset("aurora"),
            "points": PointTokenizer.from_preset("aurora")}


def test_describe():
    assert describe("<PIXEL_120>") == "PIXEL 120"
    assert describe("<DEPTH_START>") == "DEPTH START"
    assert describe("<loc0256>") == "loc 0256"


def test_text_only_llama_gets_depth_boxes_and_points():
    lm_tok = tiny_lm_tokenizer()
    model = tiny_llama(len(lm_tok))
    before = len(lm_tok)
    vocab = add_perception_tokens(model, lm_tok, perception_tokenizers())
    # 128 depth codes + 2 delimiters + 336 pixel tokens shared by boxes and points
    assert len(lm_tok) == before + 130 + 336
    assert model.get_input_embeddings().weight.shape[0] >= len(lm_tok)
    assert lm_tok.tokenize("<DEPTH_START><DEPTH_3><DEPTH_END>") == ["<DEPTH_START>", "<DEPTH_3>", "<DEPTH_END>"]
    assert vocab.lm_ids["boxes"] == vocab.lm_ids["points"]
    local = torch.tensor([[0, 5, 127]])
    assert torch.equal(vocab.from_lm("depth", vocab.to_lm("depth", local)), local)
    assert vocab.from_lm("depth", torch.tensor([0, 10_000])).tolist() == [-1, -1]
    with torch.device("meta"):  # a table made without the ids' device would land on meta and fail
        assert torch.equal(vocab.from_lm("depth", vocab.to_lm("depth", local)), local)
    # descriptive init: <PIXEL_120> starts as the mean of the LM's rows for "PIXEL 120"
    pieces = lm_tok("PIXEL 120", add_special_tokens=False)["input_ids"]
    weight = model.get_input_embeddings().weight
    row = lm_tok.convert_tokens_to_ids("<PIXEL_120>")
    assert torch.allclose(weight[row], weight[pieces].mean(0), atol=1e-6)
    out = model.get_output_embeddings().weight
    assert torch.allclose(out[row], out[pieces].mean(0), atol=1e-6)


def test_llava_padding_rows_are_used_and_reinitialised():
    lm_tok = tiny_lm_tokenizer()
    padded = len(lm_tok) + 20  # like llava-hf: 32064 rows for 32002 tokens
    model = tiny_llava(padded, lm_tok.convert_tokens_to_ids("<image>"))
    padding_before = model.get_input_embeddings().weight[len(lm_tok):].clone()
    vocab = add_perception_tokens(model, lm_tok, {"depth": PooledDepthTokenizer()})
    ids = vocab.new_token_ids
    assert ids[:20] == list(range(len(lm_tok) - 130, len(lm_tok) - 110))  # the first new ids sit on the padding rows
    assert ids[0] == padded - 20
    assert model.get_input_embeddings().weight.shape[0] == len(lm_tok)  # resized only by what padding lacked
    assert not torch.allclose(model.get_input_embeddings().weight[padded - 20 : padded], padding_before)
    vocab.validate(lm_tok, model)


def test_save_load_and_validation(tmp_path):
    lm_tok = tiny_lm_tokenizer()
    model = tiny_llama(len(lm_tok))
    vocab = add_perception_tokens(model, lm_tok, perception_tokenizers())
    vocab.save(tmp_path)
    again = PerceptionVocab.load(tmp_path)
    assert again.lm_ids == vocab.lm_ids and again.delimiters == vocab.delimiters
    again.validate(lm_tok, model)
    with pytest.raises(ValueError, match="the LM tokenizer maps"):
        again.validate(tiny_lm_tokenizer(), model)
    with pytest.raises(ValueError, match="plain text"):
        add_perception_tokens(model, lm_tok, {"qwen": BoxTokenizer.from_preset("qwen2vl")})


def test_qwen2_vl_family():
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    lm_tok = tiny_lm_tokenizer()
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(lm_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]}),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=4, in_chans=3, spatial_merge_size=2, patch_size=4,
                           temporal_patch_size=2),
    )
    model = Qwen2VLForConditionalGeneration(config)
    vocab = add_perception_tokens(model, lm_tok, {"depth": PooledDepthTokenizer(), "boxes": BoxTokenizer.from_preset("paligemma")})
    assert model.get_input_embeddings().weight.shape[0] >= len(lm_tok)
    assert len(vocab.lm_ids["boxes"]) == 1024
    vocab.validate(lm_tok, model)
