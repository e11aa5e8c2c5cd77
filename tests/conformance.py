"""The conformance suite that every perception tokenizer inherits (STYLE.md, rule 9).

A test class for a tokenizer subclasses ``TokenizerConformance`` and provides:

- ``make_tokenizer()``: a fresh tokenizer (tiny where it has weights);
- ``samples()``: a few single inputs (not batched);
- ``encode_kwargs``: keyword arguments that ``encode`` needs for the samples;
- ``decode_kwargs``: keyword arguments that ``decode`` needs (a canvas size for pixel presets).

It then gets shapes, dtypes, determinism, batch = loop, text and save/load round trips, and the
strict-loading failures for free.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from perceptok import AutoPerceptionTokenizer, CheckpointError, PerceptionTokenizer, TokenParseError
from perceptok._version import __version__


class TokenizerConformance:
    encode_kwargs: dict[str, Any] = {}
    decode_kwargs: dict[str, Any] = {}
    # Text that no tokenizer can parse strictly.
    garbage_text = "<<this is not perception-token text>>"

    def make_tokenizer(self) -> PerceptionTokenizer:
        raise NotImplementedError

    def samples(self) -> list[Any]:
        raise NotImplementedError

    def batch(self, samples: list[Any]) -> Any:
        """A batch made of single samples."""
        return list(samples)

    def item_ids(self, ids: torch.Tensor, i: int) -> torch.Tensor:
        """Item ``i`` of batched ids, without padding."""
        return ids[i]

    @pytest.fixture
    def tok(self) -> PerceptionTokenizer:
        return self.make_tokenizer()

    # --- vocabulary -------------------------------------------------------------------------

    def test_vocab_is_unique_strings(self, tok):
        assert len(tok.vocab) == tok.vocab_size > 0
        assert all(isinstance(t, str) and t for t in tok.vocab)
        assert len(set(tok.special_tokens)) == len(tok.special_tokens)
        assert all(tok.token_to_id[t] == i for i, t in enumerate(tok.vocab))

    # --- encode / decode --------------------------------------------------------------------

    def test_single_ids_are_long_and_in_vocab(self, tok):
        for x in self.samples():
            ids = tok.encode(x, **self.encode_kwargs).ids
            assert ids.dtype == torch.long
            assert ids.numel() == 0 or (0 <= int(ids.min()) and int(ids.max()) < tok.vocab_size)

    def test_encode_is_deterministic(self, tok):
        for x in self.samples():
            assert torch.equal(tok.encode(x, **self.encode_kwargs).ids, tok.encode(x, **self.encode_kwargs).ids)
        other = self.make_tokenizer()
        x = self.samples()[0]
        assert torch.equal(tok.encode(x, **self.encode_kwargs).ids, other.encode(x, **self.encode_kwargs).ids)

    def test_batch_equals_loop_of_singles(self, tok):
        samples = self.samples()
        batched = tok.encode(self.batch(samples), **self.encode_kwargs).ids
        assert batched.shape[0] == len(samples)
        for i, x in enumerate(samples):
            assert torch.equal(self.item_ids(batched, i), tok.encode(x, **self.encode_kwargs).ids)

    def test_decode_batch_equals_loop_of_singles(self, tok):
        samples = self.samples()
        batched = tok.encode(self.batch(samples), **self.encode_kwargs).ids
        decoded = tok.decode(batched, **self.decode_kwargs)
        for i, x in enumerate(samples):
            single = tok.decode(tok.encode(x, **self.encode_kwargs).ids, **self.decode_kwargs)
            assert torch.allclose(decoded[i], single, atol=1e-6)

    # --- text -------------------------------------------------------------------------------

    def test_text_round_trip(self, tok):
        for x in self.samples():
            ids = tok.encode(x, **self.encode_kwargs).ids
            text = tok.to_text(ids)
            assert isinstance(text, str)
            assert torch.equal(tok.from_text(text), ids)

    def test_batch_text_round_trip(self, tok):
        samples = self.samples()
        ids = tok.encode(self.batch(samples), **self.encode_kwargs).ids
        texts = tok.to_text(ids)
        assert isinstance(texts, list) and len(texts) == len(samples)
        assert texts == [tok.to_text(tok.encode(x, **self.encode_kwargs).ids) for x in samples]
        assert torch.equal(tok.from_text(texts), ids)

    def test_strict_parse_names_position(self, tok):
        text = tok.to_text(tok.encode(self.samples()[0], **self.encode_kwargs).ids)
        with pytest.raises(TokenParseError) as err:
            tok.from_text(text + self.garbage_text)
        assert err.value.position >= len(text) - 1
        assert err.value.expected
        with pytest.raises(TokenParseError):
            tok.from_text(self.garbage_text)

    def test_lenient_parse_recovers_from_noise(self, tok):
        ids = tok.encode(self.samples()[0], **self.encode_kwargs).ids
        noisy = "Sure! " + tok.to_text(ids) + " hope that helps"
        assert torch.equal(tok.from_text(noisy, strict=False), ids)

    # --- save / load ------------------------------------------------------------------------

    def test_save_load_round_trip(self, tok, tmp_path: Path):
        tok.save_pretrained(tmp_path)
        for loader in (AutoPerceptionTokenizer.from_pretrained, type(tok).from_pretrained):
            again = loader(tmp_path)
            assert type(again) is type(tok)
            assert again.config == tok.config
            assert again.vocab == tok.vocab
            for x in self.samples():
                assert torch.equal(again.encode(x, **self.encode_kwargs).ids, tok.encode(x, **self.encode_kwargs).ids)
            mine, theirs = tok.state_tensors(), again.state_tensors()
            assert mine.keys() == theirs.keys()
            assert all(torch.equal(mine[k], theirs[k]) for k in mine)

    def test_saved_files(self, tok, tmp_path: Path):
        tok.save_pretrained(tmp_path)
        config = json.loads((tmp_path / "config.json").read_text())
        assert config["tokenizer_type"] == tok.tokenizer_type
        assert config["perceptok_version"] == __version__
        card = (tmp_path / "README.md").read_text()
        assert "library_name: perceptok" in card and tok.tokenizer_type in card
        assert (tmp_path / "model.safetensors").exists() == bool(tok.state_tensors())
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    def _edit_config(self, folder: Path, **changes: Any) -> None:
        path = folder / "config.json"
        config = json.loads(path.read_text())
        config.update(changes)
        path.write_text(json.dumps(config))

    def test_unknown_config_key_is_refused(self, tok, tmp_path: Path):
        tok.save_pretrained(tmp_path)
        self._edit_config(tmp_path, surprise_field=1)
        with pytest.raises(CheckpointError, match="surprise_field"):
            AutoPerceptionTokenizer.from_pretrained(tmp_path)

    def test_unknown_type_and_corrupt_config_are_refused(self, tok, tmp_path: Path):
        tok.save_pretrained(tmp_path)
        self._edit_config(tmp_path, tokenizer_type="no_such_modality")
        with pytest.raises(Exception, match="no_such_modality"):
            AutoPerceptionTokenizer.from_pretrained(tmp_path)
        (tmp_path / "config.json").write_text("{not json")
        with pytest.raises(CheckpointError, match="not valid JSON"):
            AutoPerceptionTokenizer.from_pretrained(tmp_path)
        (tmp_path / "config.json").unlink()
        with pytest.raises(CheckpointError, match="config.json"):
            AutoPerceptionTokenizer.from_pretrained(tmp_path)

    def test_mismatched_weights_are_refused(self, tok, tmp_path: Path):
        tok.save_pretrained(tmp_path)
        weights = tmp_path / "model.safetensors"
        expected = tok.state_tensors()
        if not expected:
            save_file({"stray": torch.zeros(1)}, str(weights))
            with pytest.raises(CheckpointError, match="has no weights"):
                AutoPerceptionTokenizer.from_pretrained(tmp_path)
            return
        name = sorted(expected)[0]
        good = load_file(str(weights))
        for label, tensors in {
            "missing": {k: v for k, v in good.items() if k != name},
            "unexpected": {**good, "stray.weight": torch.zeros(2)},
            "wrong shapes": {**good, name: torch.zeros(*[s + 1 for s in good[name].shape])},
        }.items():
            save_file(tensors, str(weights))
            with pytest.raises(CheckpointError, match=label):
                AutoPerceptionTokenizer.from_pretrained(tmp_path)
        weights.write_bytes(b"definitely not safetensors")
        with pytest.raises(CheckpointError, match="safetensors"):
            AutoPerceptionTokenizer.from_pretrained(tmp_path)
        weights.unlink()
        with pytest.raises(CheckpointError, match="missing"):
            AutoPerceptionTokenizer.from_pretrained(tmp_path)


class CoordinateConformance(TokenizerConformance):
    """What box and point tokenizers add: they compute in numpy, and ``return_tensors="np"``
    gives the same numbers as the torch tensors they return by default; large unlabelled batches
    of text are written and read by compiled kernels that agree with the tables and the parser."""

    def test_compiled_batch_text_is_the_table_text(self, tok, monkeypatch):
        """Batches of ``COMPILED_FROM`` images or more take the compiled kernels (numba), smaller
        ones the tables and the one-text parser: the same texts and ids, with padding, empty
        images and every coordinate value of the vocabulary's range."""
        import numpy as np

        from perceptok import PAD_ID
        from perceptok.coordinates import tokenizer as module

        rng = np.random.default_rng(0)
        counts = rng.integers(0, 4, 40)
        counts[:3] = [0, 1, 3]
        ids = rng.integers(0, tok.config.num_tokens, (40, 3, tok.tokens_per_item))
        ids[0, 0], ids[1, 0] = 0, tok.config.num_tokens - 1
        ids[np.arange(3) >= counts[:, None]] = PAD_ID
        assert tok._kernels is not None  # every convention's text can be read run by run
        monkeypatch.setattr(module, "COMPILED_FROM", len(ids) + 1)
        tables = tok.to_text(ids)
        one_by_one = tok.from_text(tables, return_tensors="np")
        assert np.array_equal(one_by_one, ids)
        monkeypatch.setattr(module, "COMPILED_FROM", len(ids))
        assert tok.to_text(ids) == tables
        assert tok._kernels.read(tables) is not None
        assert np.array_equal(tok.from_text(tables, return_tensors="np"), ids)

    def item_ids(self, ids: torch.Tensor, i: int) -> torch.Tensor:
        from perceptok import PAD_ID

        rows = ids[i]
        return rows[(rows != PAD_ID).all(-1)]

    def test_numpy_results_are_the_torch_results(self, tok):
        import numpy as np

        for sample in self.samples():
            pt = tok.encode(sample, **self.encode_kwargs)
            nd = tok.encode(sample, return_tensors="np", **self.encode_kwargs)
            assert isinstance(pt.ids, torch.Tensor) and pt.ids.dtype == torch.long
            assert isinstance(nd.ids, np.ndarray) and nd.ids.dtype == np.int64
            assert np.array_equal(pt.ids.numpy(), nd.ids) and np.array_equal(pt.counts.numpy(), nd.counts)
            assert pt.counts.shape == nd.counts.shape == ()  # one image: a count, not a batch of one
            text = tok.to_text(nd)
            assert text == tok.to_text(pt)
            assert np.array_equal(tok.parse(text, return_tensors="np").ids, tok.parse(text).ids.numpy())
            decoded = tok.decode(nd.ids, return_tensors="np", **self.decode_kwargs)
            assert decoded.dtype == np.float32
            assert np.array_equal(decoded, tok.decode(pt.ids, **self.decode_kwargs).numpy())
        batch = tok.encode(self.batch(self.samples()), return_tensors="np", **self.encode_kwargs)
        texts = tok.to_text(batch)
        assert np.array_equal(tok.from_text(texts, return_tensors="np"), tok.from_text(texts).numpy())
        with pytest.raises(ValueError, match="return_tensors must be 'pt'"):
            tok.encode(self.samples()[0], return_tensors="tf", **self.encode_kwargs)
