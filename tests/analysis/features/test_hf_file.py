"""hf:MODEL on a tiny real classifier, and file:PATH label imports (three key layouts, bad input)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.errors import InputError, RmtuiError
from analysis.features import featurize_study, featurize_texts, make_featurizer
from analysis.datasets.ingest import ingest
from analysis.store import open_study
from analysis.store.features import feature_defs


@pytest.fixture(scope="module")
def tiny_clf(tmp_path_factory):
    from tests.helpers.tiny_rm import make_tiny_rm

    d = make_tiny_rm(tmp_path_factory.mktemp("m") / "tiny-clf", seed=2, num_labels=2)
    cfg = json.loads((d / "config.json").read_text())
    cfg["id2label"] = {"0": "SAFE", "1": "TOXIC"}
    cfg["label2id"] = {"SAFE": 0, "TOXIC": 1}
    (d / "config.json").write_text(json.dumps(cfg))
    return d


@pytest.fixture
def study(tmp_path):
    rows = [{"chosen": f"\n\nHuman: q{i}\n\nAssistant: " + "word " * (1 + 7 * i) + "end",
             "rejected": f"\n\nHuman: q{i}\n\nAssistant: no {i}"} for i in range(6)]
    f = tmp_path / "toy-test.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    st = open_study(tmp_path / "s.duckdb")
    ingest(st, str(f))
    yield st
    st.close()


def _direct_probs(d, strings):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(d)
    m = AutoModelForSequenceClassification.from_pretrained(d, dtype=torch.float32).eval()
    out = []
    with torch.inference_mode():
        for s in strings:  # one at a time: no padding involved
            out.append(torch.softmax(m(**tok(s, return_tensors="pt")).logits, -1)[0].numpy())
    return np.array(out)


def test_hf_probabilities_match_unbatched_forward(tiny_clf, study):
    res = featurize_study(study, f"hf:{tiny_clf}", batch_size=4)
    assert res.n_done == 12
    name = f"hf:{tiny_clf}"
    got = study.df("SELECT t.response, f.value FROM texts t JOIN features f USING (text_id) "
                   "WHERE f.featurizer = ? AND f.name = 'p_toxic' ORDER BY t.response", [name])
    ref = _direct_probs(tiny_clf, list(got["response"]))[:, 1]
    np.testing.assert_allclose(got["value"].to_numpy(), ref, atol=1e-5)
    assert set(feature_defs(study, name)["name"]) == {"p_safe", "p_toxic"}
    assert featurize_study(study, f"hf:{tiny_clf}").n_done == 0       # cached


def test_hf_label_map(tiny_clf, study):
    fz = make_featurizer(f"hf:{tiny_clf}", label_map=["TOXIC=toxic", "TOXIC=p:toxic_prob:target"])
    texts = study.df("SELECT DISTINCT text_id, context, response, text FROM texts")
    wide = fz.featurize(texts).pivot(index="text_id", columns="name", values="value")
    assert ((wide["toxic_prob"] > 0.5).astype(float) == wide["toxic"]).all()
    roles = {d.name: d.role for d in fz.feature_defs()}
    assert roles == {"toxic": "spoiler", "toxic_prob": "target"}
    with pytest.raises(RmtuiError, match="no label 'NOPE'"):
        make_featurizer(f"hf:{tiny_clf}", label_map=["NOPE=x"])


def test_hf_runs_for_new_texts_through_recorded_featurizers(tiny_clf, study):
    featurize_study(study, f"hf:{tiny_clf}")
    featurize_study(study, "heuristic")
    import pandas as pd
    from analysis.hashing import text_id

    new = pd.DataFrame({"text_id": [text_id("c", "brand new")], "context": ["c"], "response": ["brand new"],
                        "text": ["c brand new"]})
    long = featurize_texts(study, new)
    assert set(long["featurizer"]) == {"heuristic", f"hf:{tiny_clf}"}


def test_hf_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(RmtuiError, match="cannot load classifier"):
        make_featurizer(f"hf:{tmp_path / 'nothing-here'}")


# -- file: imports --------------------------------------------------------------------------------

def test_import_pair_side_csv_and_unknown_keys(study, tmp_path):
    t = study.df("SELECT pair_id, side, text_id FROM texts ORDER BY pair_id, side")
    lines = ["pair_id,side,helpful,sentiment,score,topics"]
    for i, r in enumerate(t.itertuples()):
        lines.append(f'{r.pair_id},{r.side},{"true" if i % 2 else "false"},{"positive" if i % 3 else "negative"},'
                     f'{i / 10},"[""Health"", ""Art""]"' if i == 0 else
                     f'{r.pair_id},{r.side},{"true" if i % 2 else "false"},{"positive" if i % 3 else "negative"},{i / 10},[]')
    lines.append("nosuchpair,chosen,true,neutral,0.5,[]")
    f = tmp_path / "labels.csv"
    f.write_text("\n".join(lines) + "\n")
    res = featurize_study(study, f"file:{f}")
    assert res.extra["unknown_keys"] == 1 and res.extra["rows"] == 13 and res.extra["imported_rows"] == 12
    assert res.n_done == 12
    defs = feature_defs(study, "file:labels").set_index("name")
    assert defs.loc["helpful", "role"] == "target" and defs.loc["helpful", "kind"] == "binary"
    assert defs.loc["sentiment", "kind"] == "ordinal" and defs.loc["score", "kind"] == "continuous"
    assert "topics:health" in defs.index
    v = study.df("SELECT name, value FROM features f JOIN texts t USING (text_id) "
                 "WHERE featurizer='file:labels' AND t.pair_id = ? AND t.side = ?", [t.pair_id[0], t.side[0]])
    v = dict(v.itertuples(index=False, name=None))
    assert v["helpful"] == 0 and v["sentiment"] == -1 and v["topics:health"] == 1 and v["score"] == 0


def test_import_text_id_jsonl(study, tmp_path):
    ids = list(study.df("SELECT DISTINCT text_id FROM texts ORDER BY 1")["text_id"])
    f = tmp_path / "judged.jsonl"
    f.write_text("\n".join(json.dumps({"text_id": tid, "harmless": k % 2}) for k, tid in enumerate(ids)) + "\n")
    res = featurize_study(study, f"file:{f}")
    assert res.n_done == len(ids) and res.extra["unknown_keys"] == 0


def test_import_paper_layout_maps_row_index(study, tmp_path):
    # the paper's CSV: row_id is the 0-based dataset row; our source_row is 1-based
    f = tmp_path / "taxonomy.csv"
    f.write_text("row_id,preference,text,last_response_is_helpful,last_response_sentiment\n"
                 "0,chosen,whatever,True,positive\n"
                 "0,rejected,whatever,False,negative\n"
                 "99,chosen,whatever,True,neutral\n")
    res = featurize_study(study, f"file:{f}")
    assert res.extra["unknown_keys"] == 1 and res.n_done == 2
    got = study.df("SELECT t.side, f.name, f.value FROM features f JOIN texts t USING (text_id) "
                   "JOIN pairs p USING (pair_id) WHERE f.featurizer='file:taxonomy' AND p.source_row = 1 "
                   "ORDER BY 1, 2")
    assert list(got.itertuples(index=False, name=None)) == [
        ("chosen", "helpful", 1.0), ("chosen", "sentiment", 1.0),
        ("rejected", "helpful", 0.0), ("rejected", "sentiment", -1.0)]


@pytest.mark.parametrize("content,match", [
    ("pair_id,side,helpful\nx,middle,1\n", r"bad\.csv:2: column 'side'"),
    ("text_id,helpful\nabc,maybe\n", r"bad\.csv:2: column 'helpful': cannot read 'maybe'"),
    ("foo,helpful\n1,1\n", r"bad\.csv: no key columns"),
    ("row_id,preference,helpful\nx,chosen,1\n", r"bad\.csv:2: column 'row_id' must be an integer"),
])
def test_import_bad_input_names_file_line_column(study, tmp_path, content, match):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(InputError, match=match):
        featurize_study(study, f"file:{f}")


def test_import_bad_jsonl_line(study, tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"text_id": "a", "x": 1}\n{broken\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:2: malformed JSON"):
        featurize_study(study, f"file:{f}")
