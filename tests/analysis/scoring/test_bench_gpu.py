"""``rmtui bench gpu`` (issue 28 item 4) at a tiny size on the CPU: the decoder shapes, texts of exactly
T tokens, the matrix's rows, the JSON, a failing compile kept in its row."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.scoring import ScoreSettings, load_reward_model, random_model_folder
from analysis.scoring.bench import (DECODER_SHAPES, RANDOM_SHAPES, bench_matrix, random_config,
                                    random_reward_model, shape_family, synthetic_texts)
from analysis.scoring.loading import attach_model

TINY = ["--shape", "tiny-deberta", "--decoder-shape", "tiny-llama", "--n", "16", "--tokens", "32"]


def test_decoder_shapes_are_llama_and_the_engine_loads_them(tmp_path):
    assert RANDOM_SHAPES["llama-8b"] == dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                                             num_key_value_heads=8, intermediate_size=14336, vocab_size=128256)
    assert set(DECODER_SHAPES) == {"llama-8b", "tiny-llama"}
    assert shape_family("llama-8b") == "llama" and shape_family("deberta-v3-large") == "deberta-v2"
    cfg = random_config("llama-8b")  # the config only: an 8B model is never made on a CPU
    assert (cfg.model_type, cfg.num_labels, cfg.pad_token_id, cfg.num_key_value_heads) == ("llama", 1, 0, 8)
    rm = load_reward_model(str(random_model_folder("tiny-llama", tmp_path / "llama")))
    assert type(rm.model).__name__ == "LlamaForSequenceClassification" and rm.is_decoder
    texts = synthetic_texts(rm, 6, 20)
    r = rm.score_frame(texts)
    assert np.isfinite(r["reward"]).all() and (r["n_tokens"] == 20).all() and r["reward"].std() > 0


@pytest.mark.parametrize("shape", ["tiny-deberta", "tiny-llama"])
def test_synthetic_texts_have_exactly_t_tokens(tmp_path, shape):
    rm, module = random_reward_model(shape, ScoreSettings(max_length=48), tmp_path / shape)
    attach_model(rm, module)
    texts = synthetic_texts(rm, 40, 48, seed=1)
    assert len(texts) == 40 and texts["text_id"].is_unique
    enc = rm.encode(texts)
    assert (enc.lengths == 48).all() and not enc.truncated.any()
    assert synthetic_texts(rm, 40, 48, seed=1)["text_id"].tolist() == texts["text_id"].tolist()  # seeded


def test_bench_gpu_command_tiny_on_cpu(tmp_path):
    from typer.testing import CliRunner

    from rmtui.cli import app

    out = tmp_path / "rows.json"
    r = CliRunner().invoke(app, ["bench", "gpu", *TINY, "--skip-compile", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "tiny-deberta on CPU: 16 texts x 32 tokens, fp32" in r.output and "tiny-llama on CPU" in r.output
    assert "bar applies on GPU" in r.output and "GPU only" in r.output
    data = json.loads(out.read_text())
    assert data["device"] == "cpu" and data["bar"] == 1500.0 and data["bar_applies"] is False
    rows = data["rows"]
    assert [(x["shape"], x["label"]) for x in rows] == [
        ("tiny-deberta", "eager, fused attn"), ("tiny-deberta", "eager, hf attn"), ("tiny-llama", "eager")]
    assert [x["fused_attention"] for x in rows] == [True, False, None]  # the module ran what the row says
    for x in rows:
        assert x["error"] is None and x["n"] == 16 and x["tokens"] == 32 and x["dtype"] == "fp32"
        assert x["texts_per_s"] > 0 and x["seconds"] > 0 and x["tokens_per_s"] == pytest.approx(32 * x["texts_per_s"])
        assert x["peak_memory_bytes"] > 0 and x["peak_memory_kind"] == "process peak RSS"
        assert x["bar"] is None and x["passed"] is None and x["agree"] is True
    fused, plain = rows[0], rows[1]
    assert fused["max_abs_diff"] == 0.0
    assert fused["reward_std"] > 1e-3  # the rewards spread, so the next difference tests something
    assert 0 < plain["max_abs_diff"] < 1e-3 and plain["reward_std"] == fused["reward_std"]  # another kernel, same rewards


def test_a_failing_compile_is_reported_in_its_row(tmp_path, monkeypatch):
    import torch
    from typer.testing import CliRunner

    from analysis.errors import RmtuiError
    from rmtui.cli import app

    def broken(model, **kw):
        def run(*a, **k):
            raise RuntimeError("inductor: no C++ compiler\nsecond line")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    rows = bench_matrix(shape="tiny-deberta", decoder_shape="tiny-llama", n=8, tokens=16, device="cpu")
    assert [x.label for x in rows] == ["eager, fused attn", "eager, hf attn", "compiled, fused attn",
                                       "compiled, hf attn", "eager"]
    assert [x.error for x in rows[2:4]] == ["RuntimeError: inductor: no C++ compiler"] * 2
    assert all(x.error is None and x.texts_per_s > 0 for x in rows[:2] + rows[4:])  # the rest still ran

    out = tmp_path / "rows.json"
    r = CliRunner().invoke(app, ["bench", "gpu", "--shape", "tiny-deberta", "--decoder-shape", "none", "--n", "8",
                                 "--tokens", "16", "--json", str(out)])
    assert r.exit_code == 1 and isinstance(r.exception, RmtuiError)
    assert "2 row(s) failed" in r.exception.message and "\n" not in r.exception.message
    assert len(json.loads(out.read_text())["rows"]) == 4  # written before the error


def test_bench_gpu_bad_options():
    from analysis.errors import RmtuiError

    with pytest.raises(RmtuiError, match="encoder shape"):
        bench_matrix(shape="tiny-llama", decoder_shape=None, n=2, tokens=16, device="cpu")
    with pytest.raises(RmtuiError, match="--decoder-shape"):
        bench_matrix(shape="tiny-deberta", decoder_shape="tiny-deberta", n=2, tokens=16, device="cpu")
    with pytest.raises(RmtuiError, match="--tokens 3: must be at least 4"):
        bench_matrix(shape="tiny-deberta", decoder_shape=None, n=2, tokens=3, device="cpu")
    with pytest.raises(RmtuiError, match=r"--tokens 4: must be at least 5 for tiny-deberta \(pair format adds 3"):
        bench_matrix(shape="tiny-deberta", decoder_shape=None, n=2, tokens=4, device="cpu")
