"""The scoring engine with tiny real models: formats, truncation, batch invariance, cache, resume
after SIGKILL, OOM back-off through the budget hook, errors, rescore."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.datasets.readers import ReadOptions
from analysis.errors import ModelError, RmtuiError
from analysis.hashing import text_id
from analysis.datasets.ingest import ingest
from analysis.scoring import (
    BatchRunner, ScoreSettings, check_invariance, iter_batches, load_reward_model, load_study_models,
    random_model_folder, rescore, score_study, study_models,
)
from analysis.store import open_study
from analysis.store import scores as store_scores

from ...conftest import ROOT, SAMPLE
from ...helpers.tiny_rm import VOCAB, make_tiny_rm

HARMLESS = str(SAMPLE / "hh-rlhf" / "harmless-base-test.jsonl.gz")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} [SEP] {% endfor %}"
)


def _frame(pairs):
    rows = [(text_id(c, r), c, r, f"{c}\n\nAssistant: {r}") for c, r in pairs]
    return pd.DataFrame(rows, columns=["text_id", "context", "response", "text"])


def _study(path, n_pairs):
    st = open_study(path)
    ingest(st, HARMLESS, ReadOptions(limit=n_pairs))
    return st


@pytest.fixture(scope="module")
def texts():
    from analysis.scoring import sample_texts

    return sample_texts(None, 40)


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory):
    """A tiny real Llama sequence classifier: decoder, chat template, no pad token, left padding."""
    import torch
    from transformers import BertTokenizerFast, LlamaConfig, LlamaForSequenceClassification

    path = tmp_path_factory.mktemp("models") / "tiny-llama"
    torch.manual_seed(3)
    cfg = LlamaConfig(vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      num_labels=1, bos_token_id=101, eos_token_id=102, pad_token_id=None)
    model = LlamaForSequenceClassification(cfg).eval()
    tok = BertTokenizerFast(vocab=str(VOCAB), do_lower_case=True, model_max_length=512,
                            padding_side="left", eos_token="[SEP]", bos_token="[CLS]", pad_token=None)
    tok.chat_template = "{{ bos_token }}" + CHAT_TEMPLATE
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


# ---------------------------------------------------------------------------------------------
# batching


def test_iter_batches_cover_sorted_under_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, size=500)
    lengths[7] = 5000  # longer than the budget: a batch of its own
    batches = list(iter_batches(lengths, 1024))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(500))
    assert flat[0] == 7 and batches[0] == [7]
    assert all(lengths[flat[i]] >= lengths[flat[i + 1]] for i in range(len(flat) - 1))
    for b in batches[1:]:
        assert len(b) * max(lengths[b]) <= 1024
    assert len(batches) < 200  # packed, not one by one
    assert all(len(b) <= 3 for b in iter_batches(lengths, 1024, max_batch_size=3))


def test_batch_runner_halves_budget_and_loses_nothing():
    import torch

    seen = []

    def hook(padded):
        if padded > 300:
            raise torch.cuda.OutOfMemoryError(f"hook: {padded} tokens")

    runner = BatchRunner(2000, oom_hook=hook, on_oom=lambda b, p: seen.append((b, p)))
    lengths = [50] * 40
    got = []
    for batch, out in runner.run(lengths, lambda b: [i * 10 for i in b]):
        assert len(batch) * 50 <= 300
        got.extend(zip(batch, out))
    assert sorted(got) == [(i, i * 10) for i in range(40)]
    assert runner.n_oom == 3 and runner.budget == 250  # 2000 -> 1000 -> 500 -> 250
    assert [b for b, _ in seen] == [1000, 500, 250]
    # one text that does not fit even alone: a clear error, not a loop
    single = BatchRunner(100, simulate_oom_above=10)
    with pytest.raises(ModelError, match="single text of 20 tokens"):
        list(single.run([20], lambda b: b))
    # other errors pass through untouched
    with pytest.raises(ValueError):
        list(BatchRunner(100).run([3], lambda b: (_ for _ in ()).throw(ValueError("x"))))


# ---------------------------------------------------------------------------------------------
# formats and truncation


def test_pair_format_default_and_tokens(tiny_rm_dir):
    rm = load_reward_model(str(tiny_rm_dir))
    assert rm.format == "pair" and rm.dtype == "fp32" and rm.device == "cpu" and rm.max_length == 512
    f = _frame([("\n\nHuman: hello there", "general kenobi")])
    enc = rm.encode(f)
    toks = rm.tokenizer.convert_ids_to_tokens(enc.ids[0])
    assert toks[0] == "[CLS]" and toks[-1] == "[SEP]" and toks.count("[SEP]") == 2
    assert toks[-3:-1] == ["general", "ken"] or "general" in toks[toks.index("[SEP]"):]
    assert enc.type_ids[0][-1] == 1 and enc.type_ids[0][0] == 0  # response is the second sequence
    out = rm.score_frame(f)
    assert list(out.columns) == ["text_id", "reward", "truncated", "n_tokens"]
    assert out["n_tokens"].iloc[0] == len(enc.ids[0]) and not out["truncated"].iloc[0]
    assert np.isfinite(out["reward"]).all()


def test_raw_and_chat_formats_differ_from_pair(tiny_rm_dir, tmp_path, texts):
    # give the tiny BERT tokenizer a chat template (an encoder: chat is never the default for it)
    chat_dir = tmp_path / "tiny-chat"
    shutil.copytree(tiny_rm_dir, chat_dir)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(chat_dir)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(chat_dir)
    assert load_reward_model(str(chat_dir)).format == "pair"

    f = texts.head(6)
    rewards = {}
    for fmt in ("pair", "raw", "chat"):
        rm = load_reward_model(str(chat_dir), ScoreSettings(format=fmt))
        assert rm.format == fmt
        enc = rm.encode(f.head(1))
        toks = rm.tokenizer.convert_ids_to_tokens(enc.ids[0])
        if fmt == "raw":
            assert toks[0] == "[CLS]" and toks.count("[SEP]") == 1 and set(enc.type_ids[0]) == {0}
        if fmt == "chat":
            s = rm.tokenizer.decode(enc.ids[0])
            assert "< | user | >" in s and "< | assistant | >" in s
            assert toks[0] != "[CLS]"  # template text, no extra special tokens added
        rewards[fmt] = rm.score_frame(f)["reward"].to_numpy()
    assert not np.allclose(rewards["pair"], rewards["raw"])
    assert not np.allclose(rewards["pair"], rewards["chat"])
    ids = {load_reward_model(str(chat_dir), ScoreSettings(format=x)).model_id for x in ("pair", "raw", "chat")}
    assert len(ids) == 3  # the format is part of the model run's id


def test_decoder_with_chat_template_defaults_to_chat(tiny_llama_dir, texts):
    rm = load_reward_model(str(tiny_llama_dir))
    assert rm.is_decoder and rm.format == "chat" and rm.padding_side == "left"
    assert rm.tokenizer.pad_token == rm.tokenizer.eos_token == "[SEP]"
    assert rm.model.config.pad_token_id == rm.tokenizer.pad_token_id
    # left padding with position ids from the mask: batched equals one at a time
    assert check_invariance(rm, texts.head(16)) < 1e-4
    assert load_reward_model(str(tiny_llama_dir), ScoreSettings(format="pair")).format == "pair"
    # chat truncation: from the left, the leading BOS kept, the response's end survives
    short = load_reward_model(str(tiny_llama_dir), ScoreSettings(max_length=12))
    f = _frame([("\n\nHuman: " + " ".join(["blah"] * 30), "the answer is purple")])
    enc = short.encode(f)
    toks = short.tokenizer.convert_ids_to_tokens(enc.ids[0])
    assert enc.truncated[0] and len(toks) == 12 and toks[0] == "[CLS]"
    assert toks[-5:] == ["the", "answer", "is", "purple", "[SEP]"]


def test_truncation_from_the_left_keeps_response(tiny_rm_dir):
    rm = load_reward_model(str(tiny_rm_dir), ScoreSettings(max_length=24))
    ctx = "\n\nHuman: " + " ".join(f"word{i}" for i in range(60))
    f = _frame([(ctx, "the answer is purple"), ("\n\nHuman: hi", "short one"),
                ("\n\nHuman: hi", " ".join(["long"] * 40) + " tail end")])
    enc = rm.encode(f)
    assert list(enc.truncated) == [True, False, True]
    toks = rm.tokenizer.convert_ids_to_tokens(enc.ids[0])
    assert len(toks) == 24 and toks[0] == "[CLS]"
    assert toks[-6:] == ["[SEP]", "the", "answer", "is", "purple", "[SEP]"]
    assert "word59" in rm.tokenizer.decode(enc.ids[0]).replace(" ", "")  # the context's end survives
    assert "word0" not in rm.tokenizer.decode(enc.ids[0]).replace(" ", "").split("word59")[0][:6]
    # a response longer than max_length on its own: context dropped, response's end kept
    toks3 = rm.tokenizer.convert_ids_to_tokens(enc.ids[2])
    assert len(toks3) == 24 and toks3[-3:] == ["tail", "end", "[SEP]"]
    out = rm.score_frame(f)
    assert out["truncated"].tolist() == [True, False, True] and out["n_tokens"].max() == 24
    # raw format: left truncation keeps [CLS] and the transcript's end
    raw = load_reward_model(str(tiny_rm_dir), ScoreSettings(max_length=24, format="raw"))
    t = raw.tokenizer.convert_ids_to_tokens(raw.encode(f.head(1)).ids[0])
    assert t[0] == "[CLS]" and t[-5:] == ["the", "answer", "is", "purple", "[SEP]"]


@pytest.mark.parametrize("max_length", [32, 128])
def test_pair_truncation_on_ids_equals_tokenizer_reencode(tiny_rm_dir, max_length):
    """The engine cuts long pairs on the token ids (sequence ids); that must equal re-encoding with
    the tokenizer's own left truncation, including texts whose response alone is too long."""
    from analysis.scoring import sample_texts

    rm = load_reward_model(str(tiny_rm_dir), ScoreSettings(max_length=max_length, tokenize_threads=1))
    f = sample_texts(None, 300)
    enc = rm.encode(f)
    tok, n_resp_cut = rm.tokenizer, 0
    assert enc.truncated.sum() > 20
    for i in np.flatnonzero(enc.truncated):
        c, r = f["context"].iloc[i], f["response"].iloc[i]
        try:
            ref = tok(c, r, truncation="only_first", max_length=max_length)
        except Exception:
            ref = tok("", r, truncation="only_second", max_length=max_length)
            n_resp_cut += 1
        assert list(enc.ids[i]) == list(ref["input_ids"]), i
        assert list(enc.type_ids[i]) == list(ref["token_type_ids"]), i
    if max_length == 32:
        assert n_resp_cut > 0  # the response-alone-too-long path was exercised


def test_threaded_tokenization_and_deferred_sync_change_nothing(tiny_rm_dir, texts):
    from analysis.scoring import sample_texts

    f = sample_texts("all", 600, seed=3)
    assert f["text_id"].is_unique and len(f) == 600
    one = load_reward_model(str(tiny_rm_dir), ScoreSettings(max_length=96, tokenize_threads=1, defer_sync=False))
    many = load_reward_model(str(tiny_rm_dir), ScoreSettings(max_length=96, tokenize_threads=4, defer_sync=True))
    assert many._tokenize_workers(len(f)) == 4
    e1, e4 = one.encode(f), many.encode(f)
    assert [list(x) for x in e1.ids] == [list(x) for x in e4.ids]
    assert [list(x) for x in e1.type_ids] == [list(x) for x in e4.type_ids]
    assert (e1.truncated == e4.truncated).all()
    a, b = one.score_frame(f), many.score_frame(f)
    assert a["text_id"].tolist() == b["text_id"].tolist()
    assert np.max(np.abs(a["reward"].to_numpy() - b["reward"].to_numpy())) < 1e-5


def test_truncated_count_recorded_in_study(tiny_rm_dir, tmp_path):
    st = _study(tmp_path / "s.duckdb", 20)
    res = score_study(st, str(tiny_rm_dir), "pre", settings=ScoreSettings(max_length=64))
    n_trunc = st.scalar("SELECT count(*) FROM scores WHERE truncated")
    assert res.n_truncated == n_trunc > 0
    assert st.scalar("SELECT max(n_tokens) FROM scores") == 64
    assert st.scalar("SELECT n_truncated FROM score_runs") == n_trunc
    st.close()


def test_two_label_head_reward_is_logit_difference(tmp_path, texts):
    import torch

    path = make_tiny_rm(tmp_path / "two", seed=5, num_labels=2)
    rm = load_reward_model(str(path))
    assert rm.reward_rule == "logits[:, 1] - logits[:, 0]"
    f = texts.head(3)
    enc = rm.encode(f)
    with torch.no_grad():
        lg = rm.model(input_ids=torch.tensor([enc.ids[0]]), token_type_ids=torch.tensor([enc.type_ids[0]])).logits
    assert abs(rm.score_frame(f)["reward"].iloc[0] - float(lg[0, 1] - lg[0, 0])) < 1e-5
    assert "logits[:, 1] - logits[:, 0]" in rm.record()["settings"]["reward_rule"]


# ---------------------------------------------------------------------------------------------
# invariance, OOM


@pytest.mark.parametrize("pad_multiple", [None, 8])
def test_batch_invariance_fp32(tiny_rm_dir, texts, pad_multiple):
    rm = load_reward_model(str(tiny_rm_dir), ScoreSettings(token_budget=4096, max_length=160,
                                                           pad_multiple=pad_multiple))
    diff = check_invariance(rm, texts)
    assert diff < 1e-4
    # and batches really were formed (several texts per forward)
    assert len(list(iter_batches(rm.encode(texts).lengths, 4096))) < len(texts) / 3


def test_first_token_top_equals_the_full_forward(tmp_path, tiny_llama_dir, texts):
    """BERT classifiers score with the last layer computed for [CLS] only: same rewards as the model's
    own forward (padding, token types and truncation included); other architectures keep the full one."""
    wide = make_tiny_rm(tmp_path / "wide", seed=2, layers=3, init_std=0.3)  # rewards that spread
    fast = load_reward_model(str(wide), ScoreSettings(max_length=96))
    full = load_reward_model(str(wide), ScoreSettings(max_length=96, first_token_top=False))
    assert fast._first_token and not full._first_token
    assert fast.record()["settings"]["first_token_top"] is True
    a, b = fast.score_frame(texts), full.score_frame(texts)
    assert np.max(np.abs(a["reward"].to_numpy() - b["reward"].to_numpy())) < 1e-5
    assert a["reward"].std() > 0.05  # the rewards differ between texts: the comparison means something
    assert not load_reward_model(str(tiny_llama_dir))._first_token


def test_oom_backoff_via_hook_scores_everything(tiny_rm_dir, texts):
    ref = load_reward_model(str(tiny_rm_dir)).score_frame(texts)
    calls = []
    rm = load_reward_model(str(tiny_rm_dir), ScoreSettings(token_budget=8192, simulate_oom_above=1500,
                                                           oom_hook=calls.append))
    out = rm.score_frame(texts)
    assert rm.runner.n_oom >= 2 and rm.runner.budget <= 1500
    assert out["text_id"].tolist() == ref["text_id"].tolist()
    assert np.max(np.abs(out["reward"].to_numpy() - ref["reward"].to_numpy())) < 1e-4
    assert max(calls) > 1500  # the hook saw the batches that failed
    assert all(c <= 1500 for c in calls[-5:])


# ---------------------------------------------------------------------------------------------
# errors


def test_error_cases(tmp_path, tiny_rm_dir):
    import torch
    from transformers import BertConfig, BertModel

    with pytest.raises(ModelError, match="no such model folder"):
        load_reward_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        load_reward_model(str(tmp_path / "empty"))
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    t0 = time.perf_counter()
    with pytest.raises(ModelError, match="not found locally and the hub is unreachable"):
        load_reward_model("rmtui-test-owner/no-such-reward-model")
    assert time.perf_counter() - t0 < 20
    # a bare encoder (no trained sequence-classification head)
    enc_dir = tmp_path / "bare"
    BertModel(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(enc_dir)
    shutil.copy(tiny_rm_dir / "tokenizer.json", enc_dir)
    shutil.copy(tiny_rm_dir / "tokenizer_config.json", enc_dir)
    with pytest.raises(ModelError, match="not a sequence classifier"):
        load_reward_model(str(enc_dir))
    rm = load_reward_model(str(enc_dir), ScoreSettings(allow_untrained_head=True))  # benchmarks only
    assert rm.head == "untrained" and rm.num_labels == 1
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA GPU"):
            load_reward_model(str(tiny_rm_dir), ScoreSettings(device="cuda"))
    with pytest.raises(ModelError, match="chat_template"):
        load_reward_model(str(tiny_rm_dir), ScoreSettings(format="chat"))
    with pytest.raises(ModelError, match="--format"):
        load_reward_model(str(tiny_rm_dir), ScoreSettings(format="json"))
    three = make_tiny_rm(tmp_path / "three", num_labels=3)
    with pytest.raises(ModelError, match="3 labels"):
        load_reward_model(str(three))
    st = open_study(tmp_path / "s.duckdb")
    with pytest.raises(RmtuiError, match="--role"):
        score_study(st, str(tiny_rm_dir), "middle")
    st.close()


# ---------------------------------------------------------------------------------------------
# study: cache, roles, rescore


def test_score_study_cache_roles_and_rescore(tiny_rm_dir, tiny_rm_dir_b, tmp_path):
    st = _study(tmp_path / "s.duckdb", 15)
    n = store_scores.n_texts(st)
    r1 = score_study(st, str(tiny_rm_dir), "pre", settings=ScoreSettings(chunk_size=7), limit=10)
    assert r1.n_scored == 10 and r1.n_skipped == 0
    r2 = score_study(st, str(tiny_rm_dir), "pre", settings=ScoreSettings(chunk_size=7))
    assert r2.n_scored == n - 10 and r2.n_skipped == 10 and r2.model_id == r1.model_id
    r3 = score_study(st, str(tiny_rm_dir), "pre")
    assert r3.n_scored == 0 and r3.n_skipped == n
    assert st.scalar("SELECT count(*) FROM scores") == n
    post = score_study(st, str(tiny_rm_dir_b), "post", name="post-D")
    models = study_models(st)
    assert models["role"].tolist() == ["pre", "post"] and models["name"].tolist()[1] == "post-D"
    row = models.iloc[0]
    assert row["format"] == "pair" and row["dtype"] == "fp32" and row["max_length"] == 512
    assert row["revision"].startswith("folder:") and row["padding_side"] == "right"
    assert row["truncation_side"] == "left" and row["token_budget"] == 4096  # CPU default
    assert st.scalar("SELECT count(*) FROM score_runs WHERE finished_at IS NOT NULL") == 4

    # more pairs arrive: only the new texts are scored
    ingest(st, HARMLESS, ReadOptions(limit=20))
    r4 = score_study(st, str(tiny_rm_dir), "pre")
    assert r4.n_scored == store_scores.n_texts(st) - n

    # a different max length is another model run; a new 'pre' demotes the old one
    r5 = score_study(st, str(tiny_rm_dir), "pre", settings=ScoreSettings(max_length=128), limit=3)
    assert r5.model_id != r1.model_id and r5.demoted == [r1.model_id]
    assert study_models(st).set_index("model_id").loc[r1.model_id, "role"] == "other"
    score_study(st, str(tiny_rm_dir), "pre")  # back as pre
    st.execute("DELETE FROM models WHERE model_id = ?", [r5.model_id])

    # rescore new texts with the study's models (reloaded from their records)
    models = load_study_models(st)
    assert [m.role for m in models] == ["pre", "post"]
    assert [m.model_id for m in models] == [r1.model_id, post.model_id]
    new = _frame([("\n\nHuman: Can you help me?", "Sure, happily."), ("\n\nHuman: Can you help me?", "No.")])
    before = st.scalar("SELECT count(*) FROM scores")
    out = rescore(st, new, models)
    assert len(out) == 4 and set(out["role"]) == {"pre", "post"} and out["reward"].notna().all()
    assert st.scalar("SELECT count(*) FROM scores") == before + 4
    again = rescore(st, new, models)  # cached: nothing new, same numbers
    assert st.scalar("SELECT count(*) FROM scores") == before + 4
    assert np.allclose(again["reward"], out["reward"])
    direct = models[0].score_frame(new)["reward"].to_numpy()
    assert np.allclose(out[out.role == "pre"]["reward"].to_numpy(), direct, atol=1e-6)
    st.close()


def test_model_id_tracks_folder_content(tiny_rm_dir, tmp_path):
    a = load_reward_model(str(tiny_rm_dir))
    assert load_reward_model(str(tiny_rm_dir)).model_id == a.model_id
    copy = tmp_path / "copy"
    shutil.copytree(tiny_rm_dir, copy)
    b = load_reward_model(str(copy))
    assert b.revision == a.revision  # content fingerprint, not mtimes
    make_tiny_rm(tmp_path / "other", seed=9)
    for f in ("model.safetensors",):
        shutil.copy(tmp_path / "other" / f, copy / f)
    assert load_reward_model(str(copy)).revision != a.revision


def test_random_config_model_path_works(tmp_path, texts):
    path = random_model_folder("tiny-deberta", tmp_path / "deb")
    rm = load_reward_model(str(path))
    assert type(rm.model).__name__ == "DebertaV2ForSequenceClassification"
    assert check_invariance(rm, texts.head(8)) < 1e-4


# ---------------------------------------------------------------------------------------------
# resume after SIGKILL (a real subprocess)


def test_resume_after_sigkill_no_duplicates_no_loss(tiny_rm_dir, tmp_path):
    killed = tmp_path / "killed.duckdb"
    st = _study(killed, 120)
    n = store_scores.n_texts(st)
    st.close()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "rmtui", "score", "--study", str(killed), "--model", str(tiny_rm_dir),
           "--role", "pre", "--chunk-size", "10", "--max-length", "64"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    commits = 0
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("committed "):
                commits += 1
                if commits == 3:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, "".join(lines)
    st = open_study(killed)
    got = st.scalar("SELECT count(*) FROM scores")
    assert 30 <= got < n  # every committed chunk is there, the run did not finish
    assert st.scalar("SELECT count(*) FROM score_runs WHERE finished_at IS NULL") == 1
    res = score_study(st, str(tiny_rm_dir), "pre", settings=ScoreSettings(chunk_size=10, max_length=64))
    assert res.n_skipped == got and res.n_scored == n - got
    assert st.scalar("SELECT count(*) FROM scores") == n
    assert st.scalar("SELECT count(DISTINCT text_id) FROM scores") == n
    resumed = st.df("SELECT text_id, reward FROM scores ORDER BY text_id")
    st.close()

    # an uninterrupted run on a fresh study gives the same rewards
    fresh = tmp_path / "fresh.duckdb"
    st2 = _study(fresh, 120)
    score_study(st2, str(tiny_rm_dir), "pre", settings=ScoreSettings(max_length=64))
    full = st2.df("SELECT text_id, reward FROM scores ORDER BY text_id")
    st2.close()
    assert resumed["text_id"].tolist() == full["text_id"].tolist()
    assert np.max(np.abs(resumed["reward"].to_numpy() - full["reward"].to_numpy())) < 1e-5


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_score_and_bench(tiny_rm_dir, tmp_path):
    from typer.testing import CliRunner

    from rmtui.cli import app

    st = _study(tmp_path / "c.duckdb", 10)
    st.close()
    runner = CliRunner()
    r = runner.invoke(app, ["score", "--study", str(tmp_path / "c.duckdb"), "--model", str(tiny_rm_dir),
                            "--role", "pre", "--max-length", "64", "--check-invariance"])
    assert r.exit_code == 0, r.output
    assert "batch invariance: max |batched - one at a time|" in r.output
    assert "scored 20, skipped 0 cached, truncated" in r.output and "texts/s" in r.output
    r = runner.invoke(app, ["score", "--study", str(tmp_path / "c.duckdb"), "--model", str(tiny_rm_dir),
                            "--role", "pre", "--max-length", "64"])
    assert "scored 0, skipped 20 cached" in r.output
    r = runner.invoke(app, ["bench", "scoring", "--model", str(tiny_rm_dir), "--n", "12", "--max-length", "64"])
    assert r.exit_code == 0, r.output
    assert "naive (1 text/forward, fp32)" in r.output and "ratio" in r.output and "agree" in r.output
    r = runner.invoke(app, ["bench", "scoring", "--model", str(tiny_rm_dir), "--n", "30", "--naive-n", "8",
                            "--texts", "all"])
    assert r.exit_code == 0, r.output
    assert "(8 texts in" in r.output and "(30 texts in" in r.output and "agree" in r.output
    assert r.output.count(" tokens/s (") == 2  # naive and engine, each with its own mean length


def _deberta_encoder(layers: int, **config):
    """A small DeBERTa-v2 encoder (hidden 32, 4 heads, relative positions up to 24) in eval mode."""
    from transformers import DebertaV2Config
    from transformers.models.deberta_v2.modeling_deberta_v2 import DebertaV2Encoder

    cfg = DebertaV2Config(hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=64,
                          relative_attention=True, max_relative_positions=24, norm_rel_ebd="layer_norm", **config)
    return DebertaV2Encoder(cfg).eval()


@pytest.mark.parametrize("pos_att_type,share_att_key,buckets,t", [
    (["p2c", "c2p"], True, 16, 40),   # offsets past the bucket span (log buckets), 2t-1 > 2*span
    (["p2c", "c2p"], False, 64, 20),  # separate position projections, 2t-1 < 2*span
    (["c2p"], True, -1, 33),          # plain clipped relative positions, one term only
    (["p2c"], False, 8, 17),
])
def test_fused_attention_module_equals_transformers(pos_att_type, share_att_key, buckets, t):
    """One DeBERTa-v2 attention layer, fused (skewed position tables + SDPA) against transformers' own
    forward, with padded keys: every valid query row agrees (padded query rows are never read)."""
    import torch

    from analysis.models.deberta_attention import _first_token_layer_forward, _patch, patch_deberta_v2_attention, unpatched

    torch.manual_seed(7)
    enc = _deberta_encoder(1, position_buckets=buckets, pos_att_type=pos_att_type, share_att_key=share_att_key,
                           initializer_range=0.5)
    hidden = torch.randn(3, t, 32)
    mask = torch.ones(3, t, dtype=torch.long)
    mask[1, t - 5:] = 0
    mask[2, 3:] = 0
    assert patch_deberta_v2_attention(enc) == 1
    with torch.inference_mode():
        fused = enc(hidden, mask).last_hidden_state
        with unpatched(enc):
            plain = enc(hidden, mask).last_hidden_state
    valid = mask.bool()
    assert plain[valid].abs().mean() > 0.1
    diff = (fused - plain)[valid].abs().max().item()
    assert diff < 1e-4, diff
    # the last layer for the first token only (what the classifier's pooler reads)
    assert _patch(enc.layer[-1], _first_token_layer_forward) == 1
    with torch.inference_mode():
        first = enc(hidden, mask).last_hidden_state
    assert first.shape == (3, 1, 32)
    assert (first[:, 0] - plain[:, 0]).abs().max().item() < 1e-4


def test_fused_attention_traces_without_graph_breaks():
    """``--compile`` sees each fused attention layer as one graph: a graph break (e.g. reading a
    tensor's storage offset) split every layer and recompiled per batch shape (0.3x on tiny-deberta)."""
    import torch

    from analysis.models.deberta_attention import _first_token_layer_forward, _patch, patch_deberta_v2_attention

    enc = _deberta_encoder(2, position_buckets=16, pos_att_type=["p2c", "c2p"], share_att_key=True)
    assert patch_deberta_v2_attention(enc) == 2
    assert _patch(enc.layer[-1], _first_token_layer_forward) == 1
    with torch.inference_mode():
        ex = torch._dynamo.explain(enc)(torch.randn(2, 20, 32), torch.ones(2, 20, dtype=torch.long))
    assert ex.graph_count >= 1
    assert ex.graph_break_count == 0, [r.reason.splitlines()[0] for r in ex.break_reasons]


@pytest.mark.parametrize("share_att_key,buckets", [(True, 16), (False, 16), (True, -1)])
def test_fused_deberta_attention_equals_transformers(tmp_path, texts, share_att_key, buckets):
    """DeBERTa-v2 scored with the fused attention (position bias + SDPA) gives transformers' rewards:
    padding, bucketed relative positions beyond the bucket span, both position terms; the naive loop
    runs transformers' own attention."""
    import torch
    from transformers import BertTokenizerFast, DebertaV2Config, DebertaV2ForSequenceClassification

    from analysis.models.deberta_attention import patch_deberta_v2_attention, unpatched

    torch.manual_seed(4)
    cfg = DebertaV2Config(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=512, relative_attention=True,
                          position_buckets=buckets, max_relative_positions=64, pos_att_type=["p2c", "c2p"],
                          position_biased_input=False, norm_rel_ebd="layer_norm", share_att_key=share_att_key,
                          type_vocab_size=0, num_labels=1, pad_token_id=0, initializer_range=0.3)
    d = tmp_path / "deb"
    DebertaV2ForSequenceClassification(cfg).eval().save_pretrained(d)
    BertTokenizerFast(vocab=str(VOCAB), do_lower_case=True, model_max_length=512).save_pretrained(d)
    # padded to a multiple of 8 as on CUDA: padded keys the engine adds are masked like the tokenizer's
    fused = load_reward_model(str(d), ScoreSettings(max_length=160, token_budget=2048, pad_multiple=8))
    plain = load_reward_model(str(d), ScoreSettings(max_length=160, token_budget=2048, fused_attention=False,
                                                    first_token_top=False))
    assert fused._fused_attention and not plain._fused_attention and not plain._first_token_layer
    assert fused._first_token_layer  # the last layer computes the first token only
    assert fused.record()["settings"]["fused_attention"] is True
    assert fused.record()["settings"]["first_token_top"] is True
    a, b = fused.score_frame(texts), plain.score_frame(texts)
    assert np.isfinite(a["reward"]).all() and a["reward"].std() > 0.05
    assert np.max(np.abs(a["reward"].to_numpy() - b["reward"].to_numpy())) < 1e-4
    assert check_invariance(fused, texts.head(12)) < 1e-4  # batched (padded keys) = one at a time
    assert patch_deberta_v2_attention(fused.model) == 0  # already patched: idempotent
    with unpatched(fused.model):  # transformers' own forwards inside, rmtui's again after
        assert not any(hasattr(m, "_rmtui_original_forward") for m in fused.model.modules())
        c = fused.score_frame(texts.head(6))
    assert sum(hasattr(m, "_rmtui_original_forward") for m in fused.model.modules()) == 3  # 2 attention, 1 layer
    assert np.max(np.abs(c["reward"].to_numpy() - b["reward"].to_numpy()[:6])) < 1e-4
    with unpatched(fused.model, only="first_token"):
        assert sum(hasattr(m, "_rmtui_original_forward") for m in fused.model.modules()) == 2
        c = fused.score_frame(texts.head(6))
    assert np.max(np.abs(c["reward"].to_numpy() - b["reward"].to_numpy()[:6])) < 1e-4
