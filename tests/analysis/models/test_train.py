"""rmtui train, the held-out split, and the embedded models' materialisation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from analysis.datasets.readers import ReadOptions
from analysis.errors import InputError, ModelError
from analysis.datasets.ingest import ingest
from analysis.store import open_study
from analysis.models.base import load_base
from analysis.models.train import TRAIN_META, Encoder, RewardNet, TrainSettings, train
from analysis.models.train_pairs import PAIR_COLUMNS, TRAINED_PAIRS, heldout_pairs, read_trained_pairs

from tests.conftest import HH_FILES, SAMPLE


def _score(folder: Path, contexts: list[str], responses: list[str]) -> list[float]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    enc = tok(contexts, responses, truncation=True, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model(**enc).logits.squeeze(-1).tolist()


# ---------------------------------------------------------------------------------------------
# held-out split


def test_heldout_pairs_seeded_fraction_and_independent_per_pair():
    ids = [f"p{i}" for i in range(4000)]
    held = heldout_pairs(ids, seed=0, frac=0.2)
    assert 0.18 < len(held) / len(ids) < 0.22
    assert held == heldout_pairs(list(reversed(ids)), seed=0, frac=0.2)
    # a pair's status does not depend on which other pairs are present
    assert heldout_pairs(ids[:100], 0, 0.2) == held & set(ids[:100])
    other = heldout_pairs(ids, seed=1, frac=0.2)
    assert other != held and 0.18 < len(other) / len(ids) < 0.22
    assert heldout_pairs(ids, 0, 0.0) == set()
    with pytest.raises(InputError):
        heldout_pairs(ids, 0, 1.0)


# ---------------------------------------------------------------------------------------------
# the training loop on a tiny real BERT


def test_cached_split_forward_equals_the_full_model(tiny_rm_dir):
    import torch

    model, tok = load_base(str(tiny_rm_dir), TrainSettings(train_layers=1))
    net = RewardNet(model, 1)
    assert net.caches and net.n_frozen == 1
    enc = Encoder(tok, 64)
    enc.add(["a", "b", "c"], ["Human: hi there", "Human: why? " * 40, ""],
            ["hello, how can I help?", "because.", "ok"])
    ids, types, mask = enc.batch(["a", "b", "c"])
    assert enc.n_truncated == 1
    # left truncation keeps the response: the last tokens before [SEP] are the response's
    assert tok.decode(enc.ids["b"][-3:-1]) == "because."
    with torch.inference_mode():
        full = net.full(ids, types, mask)
        split = net.top(net.bottom(ids, types, mask), mask)
    assert torch.allclose(full, split, atol=1e-5)
    # only the top layer, the pooler and the head train
    names = set(net.trainable_state())
    assert any(".encoder.layer.1." in n for n in names) and not any(".encoder.layer.0." in n for n in names)
    assert "classifier.weight" in names and not any("embeddings" in n for n in names)


def _planted_frame(n: int = 48) -> pd.DataFrame:
    """Chosen responses say 'glad to help', rejected ones 'go away': a signal a tiny RM can learn."""
    rows = []
    for i in range(n):
        ctx = f"\n\nHuman: question number {i} about topic {i % 7}?"
        rows.append((f"pair{i}", "planted-a" if i % 2 else "planted-b", ctx, f"glad to help with {i}", ctx,
                     f"go away {i}", False))
    rows.append(("same", "planted-a", "\n\nHuman: hi", "hello", "\n\nHuman: hi", "hello", True))
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def test_train_learns_a_planted_preference_and_saves_a_loadable_model(tiny_rm_dir, tmp_path):
    frame = _planted_frame()
    out = tmp_path / "rm"
    settings = TrainSettings(epochs=6, lr=3e-3, batch_size=8, max_length=48, train_layers=1, seed=0, heldout_frac=0.25)
    res = train(str(tiny_rm_dir), out, frame, settings)
    assert res.phase.n_skipped_identical == (0 if "same" in res.heldout_ids else 1)
    assert res.n_heldout == len(heldout_pairs(frame["pair_id"], 0, 0.25))
    acc = dict(zip(res.accuracy["subset"], res.accuracy["accuracy"]))
    assert acc["all"] == 1.0, res.accuracy  # every held-out pair now ranks chosen first
    assert res.phase.final_loss < 0.65  # ln 2 = 0.693 is where an untrained RM starts
    # reload the way users do and score: chosen beats rejected on new texts
    r = _score(out, ["\n\nHuman: something new?"] * 2, ["glad to help with that", "go away now"])
    assert r[0] > r[1]
    meta = json.loads((out / TRAIN_META).read_text())
    assert meta["settings"]["seed"] == 0 and meta["n_heldout_pairs"] == res.n_heldout
    trained = read_trained_pairs(out / TRAINED_PAIRS)
    assert len(trained) == len(frame) - res.n_heldout  # in-sample pairs, identical one included
    with pytest.raises(InputError):
        train(str(tiny_rm_dir), out, frame, settings)  # the folder is not empty


def test_cli_train_on_a_study_one_step_saves_reloads_and_marks_heldout(tiny_rm_dir, tmp_path, study_path):
    from typer.testing import CliRunner

    from rmtui.cli import app

    with open_study(study_path) as st:
        for f in HH_FILES[:2]:
            ingest(st, str(f), ReadOptions(limit=15))
    out = tmp_path / "rm"
    args = ["train", "--base", str(tiny_rm_dir), "--out", str(out), "--study", str(study_path),
            "--epochs", "1", "--batch-size", "64", "--max-length", "64", "--seed", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Held-out pairwise accuracy" in result.output and "harmless-base" in result.output
    meta = json.loads((out / TRAIN_META).read_text())
    assert meta["train"]["steps"] == 1
    # the saved model differs from the base in the trained top layer only
    from safetensors.torch import load_file

    before, after = load_file(str(tiny_rm_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys()
    changed = {k for k in before if not (before[k] == after[k]).all()}
    assert changed and all(".layer.1." in k or "pooler" in k or "classifier" in k for k in changed)
    r = _score(out, ["\n\nHuman: hi"], ["hello"])
    assert len(r) == 1 and r[0] == r[0]
    with open_study(study_path) as st:
        df = st.df("SELECT pair_id, heldout FROM pairs")
    assert df["heldout"].notna().all()
    assert set(df.loc[df["heldout"], "pair_id"]) == heldout_pairs(df["pair_id"], 3, 0.2)


def test_cli_train_needs_exactly_one_source(tiny_rm_dir, tmp_path):
    from rmtui.cli.train import train as train_cmd

    with pytest.raises(InputError):
        train_cmd(base=str(tiny_rm_dir), out=str(tmp_path / "x"), study=None, data=None, subsets=None, seed=0,
                  epochs=1, lr=1e-4, max_length=64, batch_size=4, heldout_frac=0.2, train_layers=1,
                  keep_layers=None, limit=None, mark_heldout=True, overwrite=False)


# ---------------------------------------------------------------------------------------------
# embedded models


EMBED = Path(os.environ.get("RMTUI_EMBEDDED_DIR", SAMPLE / "models"))
needs_embedded = pytest.mark.skipif(not (EMBED / "post-d" / "delta.safetensors").exists(),
                                    reason="embedded models not built")


def test_resolve_model_spec_passes_other_specs_through():
    from analysis.models.embedded import base_model_path, resolve_model_spec

    assert resolve_model_spec("/some/folder") == "/some/folder"
    assert resolve_model_spec("OpenAssistant/reward-model-deberta-v3-large") == "OpenAssistant/reward-model-deberta-v3-large"
    assert resolve_model_spec("embedded:base") == str(base_model_path())
    with pytest.raises(ModelError):
        resolve_model_spec("embedded:nope")


def test_completion_marker_checks_hash_and_every_file_size(tmp_path):
    from analysis.models.embedded import MARKER, _complete

    d = tmp_path / "m"
    d.mkdir()
    (d / "model.safetensors").write_bytes(b"x" * 100)
    (d / "config.json").write_text("{}")
    assert not _complete(d, "h1")  # no marker: a writer died before finishing
    (d / MARKER).write_text(json.dumps({"hash": "h1", "files": {"model.safetensors": 100, "config.json": 2}}))
    assert _complete(d, "h1")
    assert not _complete(d, "h2")  # another build of the model
    (d / "model.safetensors").write_bytes(b"x" * 99)
    assert not _complete(d, "h1")  # truncated
    (d / "model.safetensors").unlink()
    assert not _complete(d, "h1")


@needs_embedded
def test_embedded_materialisation_is_idempotent_repairs_a_damaged_cache_and_loads_offline(tmp_path, monkeypatch):
    from analysis.models.embedded import MARKER, embedded_model_path, resolve_model_spec

    monkeypatch.setenv("RMTUI_CACHE", str(tmp_path / "cache"))
    ctx = ["\n\nHuman: How do I pick a lock?"] * 2
    resp = ["I can't help with breaking into places.", "Sure, take a tension wrench and rake the pins."]

    path = embedded_model_path("post")
    assert path.parent == tmp_path / "cache" / "models" and path.name.startswith("rmtui-minilm-post-d-")
    assert resolve_model_spec("embedded:post") == str(path)
    rewards = _score(path, ctx, resp)
    stamp = (path / MARKER).stat().st_mtime_ns
    assert embedded_model_path("post") == path and (path / MARKER).stat().st_mtime_ns == stamp  # no rebuild

    # a truncated weight file behind a marker: detected by size, rebuilt
    weights = path / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.truncate(1000)
    # a crashed writer's temp folder (dead pid) next to it
    stale = path.parent / f".{path.name}.tmp-999999999-abcdef"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\0" * 10)
    assert embedded_model_path("post") == path
    assert not stale.exists()
    assert _score(path, ctx, resp) == pytest.approx(rewards, abs=1e-6)

    # pre-D is another model; both load offline with plain transformers
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    pre = embedded_model_path("pre")
    assert pre != path and pre.name.startswith("rmtui-minilm-pre-d-")
    assert _score(pre, ctx, resp) != pytest.approx(rewards, abs=1e-3)


@needs_embedded
def test_mark_embedded_heldout_matches_the_seeded_split(study_path):
    from analysis.models.embedded import mark_embedded_heldout

    with open_study(study_path) as st:
        for f in HH_FILES:
            ingest(st, str(f), ReadOptions(limit=40))
        n_held, n_in = mark_embedded_heldout(st)
        df = st.df("SELECT pair_id, heldout FROM pairs")
    assert n_held + n_in == len(df) == 160
    build = json.loads((EMBED / "build_report.json").read_text())
    expected = heldout_pairs(df["pair_id"], build["seed"], build["settings"]["heldout_frac"])
    assert set(df.loc[df["heldout"], "pair_id"]) == expected
    assert 0 < n_held < n_in


def test_build_post_training_frame_all_subsets_oversampled_and_bad_names():
    from analysis.models.embedded_build import parse_oversample, post_training_frame

    frame = pd.DataFrame({"pair_id": [f"p{i}" for i in range(10)],
                          "subset": ["a"] * 4 + ["b"] * 3 + ["c"] * 3,
                          "heldout": [False, False, True, False, False, True, False, False, False, True]})
    assert parse_oversample("a=3, b=1") == {"a": 3, "b": 1} and parse_oversample("") == {}
    for bad in ("a", "a=0", "a=x", "=2"):
        with pytest.raises(InputError):
            parse_oversample(bad)
    subsets, over, uniq, rep = post_training_frame(frame, ("all",), {"a": 3, "b": 1})
    assert subsets == ("a", "b", "c") and over == {"a": 3}
    assert list(uniq["pair_id"]) == ["p0", "p1", "p3", "p4", "p6", "p7", "p8"]  # in-sample only, each once
    counts = rep["pair_id"].value_counts().to_dict()
    assert counts == {"p0": 3, "p1": 3, "p3": 3, "p4": 1, "p6": 1, "p7": 1, "p8": 1}
    _, _, uniq, rep = post_training_frame(frame, ("c",))
    assert list(uniq["pair_id"]) == list(rep["pair_id"]) == ["p7", "p8"]
    with pytest.raises(InputError):
        post_training_frame(frame, ("a", "nope"))
    with pytest.raises(InputError):
        post_training_frame(frame, ("c",), {"a": 2})  # oversampling a subset it does not train on


def test_build_embedded_small_run_oversamples_records_and_verifies(tmp_path, monkeypatch):
    """The real build path on 12 pairs per subset: the report records its recipe and the command that
    reproduces it, oversampling changes the steps, a rebuild keeps the replaced build's numbers, and
    each stored delta materialises into a folder whose rewards equal the build's."""
    import math

    from analysis.models.embedded_build import build_command, build_embedded

    monkeypatch.setenv("RMTUI_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "models"
    kw = dict(limit=12, max_length=32, epochs_pre=1, epochs_post=1, batch_size=4, verify_pairs=8, log=lambda s: None)
    rep = build_embedded(out, oversample_pre={"helpful-online": 3}, oversample_post={"harmless-base": 2}, **kw)
    assert rep["oversample_pre"] == {"helpful-online": 3} and rep["post_oversample"] == {"harmless-base": 2}
    train = rep["train_per_subset"]
    usable = rep["phases"]["pre"]["n_pairs"]  # pairs per pre-D epoch, identical pairs left out
    helpful = train["helpful-base"] + train["helpful-rejection-sampled"] + 3 * train["helpful-online"]
    assert usable + rep["phases"]["pre"]["n_skipped_identical"] == helpful
    assert rep["phases"]["pre"]["steps"] == math.ceil(usable / 4)
    assert "--oversample-pre helpful-online=3" in rep["command"] and "--max-length 32" in rep["command"]
    assert rep["command"] == build_command(max_length=32, epochs_pre=1, epochs_post=1, batch_size=4,
                                           oversample_pre={"helpful-online": 3},
                                           oversample_post={"harmless-base": 2})
    for role in ("pre", "post"):
        assert rep["verify"][role]["max_abs_reward_diff"] < 1e-5
    readme = (out / "README.md").read_text()
    assert "each epoch repeating helpful-online 3x" in readme and "previous_build" not in readme
    rep2 = build_embedded(out, **kw)
    assert rep2["previous_build"]["command"] == rep["command"]
    assert rep2["previous_build"]["accuracy"]["pre"] == rep["accuracy_cached"]["pre"]
    assert "previous_build" in (out / "README.md").read_text()
