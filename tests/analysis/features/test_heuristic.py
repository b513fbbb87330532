"""Heuristic features on hand-written texts with known answers, the per-text cache, the matrix."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.features import feature_matrix, featurize_study, featurize_texts, make_featurizer
from analysis.features.heuristic import DEFS, NAMES, HeuristicFeaturizer
from analysis.hashing import text_id
from analysis.datasets.ingest import ingest
from analysis.store import open_study
from analysis.store.features import feature_defs, side_means


@pytest.fixture(scope="module")
def fz():
    return HeuristicFeaturizer()


def test_lengths(fz):
    f = fz.features_of("Hello, world! Don't panic.")
    # tokens: Hello , world ! Don ' t panic .  -> 9 ; words: Hello world Don't panic -> 4
    assert f["len_tokens"] == 9
    assert f["len_words"] == 4
    assert fz.features_of("well-known  e-mail")["len_words"] == 2
    assert fz.features_of("")["len_tokens"] == 0 and fz.features_of("")["len_words"] == 0


def test_list_items(fz):
    text = "Steps:\n1. mix\n2) bake\n- cool\n* eat\n+ share\n• smile\nnot-a-list - item\n3.no space"
    assert fz.features_of(text)["list_items"] == 6
    assert fz.features_of("Just prose, no list.")["list_items"] == 0


def test_questions(fz):
    f = fz.features_of("What? Really?? Why not")
    assert f["n_questions"] == 2 and f["has_question"] == 1
    f = fz.features_of("A statement.")
    assert f["n_questions"] == 0 and f["has_question"] == 0


@pytest.mark.parametrize("text,expected", [
    ("I can't help you with that.", 1),
    ("I\u2019m not able to do this.", 1),        # curly apostrophe normalised
    ("As an AI, I have no opinions.", 1),
    ("I'd rather not say.", 1),
    ("I'm sorry, but no.", 1),
    ("I WILL NOT do that", 1),
    ("Sure, here is a recipe for bread.", 0),
    ("You can't go wrong with pasta.", 0),         # not first person
])
def test_refusal_phrase(fz, text, expected):
    assert fz.features_of(text)["refusal_phrase"] == expected


@pytest.mark.parametrize("text,expected", [
    ("Sorry about that.", 1), ("I apologize for the confusion.", 1), ("My apologies.", 1),
    ("Please forgive me.", 1), ("Sorrowful tale.", 0), ("Here you go.", 0),
])
def test_apology_phrase(fz, text, expected):
    assert fz.features_of(text)["apology_phrase"] == expected


def test_hedges(fz):
    assert fz.features_of("Maybe it will rain; I think it probably might. It depends.")["hedges"] == 5
    assert fz.features_of("The sky is blue.")["hedges"] == 0
    assert fz.features_of("Mightiest kindly")["hedges"] == 0  # whole words only


def test_sentiment(fz):
    pos = fz.features_of("This is wonderful, I love it!")
    neg = fz.features_of("This is terrible and I hate it.")
    neu = fz.features_of("The box is on the table.")
    assert pos["sentiment_lexicon"] == 1 and pos["sentiment_compound"] >= 0.05
    assert neg["sentiment_lexicon"] == -1 and neg["sentiment_compound"] <= -0.05
    assert neu["sentiment_lexicon"] == 0 and neu["sentiment_compound"] == 0.0
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    c = SentimentIntensityAnalyzer().polarity_scores("This is wonderful, I love it!")["compound"]
    assert pos["sentiment_compound"] == pytest.approx(c)


def test_readability(fz):
    # hand-computed: 6 words, 1 sentence, 6 syllables -> 206.835 - 1.015*6 - 84.6*1 = 116.145
    assert fz.features_of("The cat sat on the mat.")["readability_fre"] == pytest.approx(116.145)
    assert fz.features_of("")["readability_fre"] == 0.0
    hard = fz.features_of("Institutional considerations necessitate comprehensive organizational reconfiguration.")
    assert hard["readability_fre"] < 0


def test_second_person(fz):
    assert fz.features_of("You said your idea is yours; you're right, and you've earned it.")["second_person"] == 5
    assert fz.features_of("Youth and bayou are not address.")["second_person"] == 0


def test_url_and_code(fz):
    f = fz.features_of("See https://example.com/x or www.python.org")
    assert f["has_url"] == 1 and f["has_code"] == 0
    assert fz.features_of("Run `ls -l` now")["has_code"] == 1
    assert fz.features_of("```\nprint(1)\n```")["has_code"] == 1
    assert fz.features_of("plain words")["has_url"] == 0


def test_defs_are_documented_proxies():
    assert NAMES == [d.name for d in DEFS]
    paper_names = {"helpful", "harmless", "honest", "refusal", "sentiment", "eloquent", "coherent"}
    for d in DEFS:
        assert d.proxy and d.role == "spoiler" and d.description
        assert d.name not in paper_names
    import pathlib

    doc = (pathlib.Path(__file__).resolve().parents[3] / "docs" / "features.md").read_text()
    for d in DEFS:
        assert f"`{d.name}`" in doc, d.name


def test_featurize_long_frame_uses_last_response(fz):
    texts = pd.DataFrame({"text_id": ["a", "b"], "context": ["\n\nHuman: why? why? why?", "x"],
                          "response": ["Fine.", "Why?"], "text": ["", ""]})
    long = fz.featurize(texts)
    assert set(long.columns) == {"text_id", "name", "value"}
    assert len(long) == 2 * len(NAMES)
    q = long[long.name == "n_questions"].set_index("text_id")["value"]
    assert q["a"] == 0 and q["b"] == 1   # the context's questions are not counted


def test_study_cache_matrix_and_means(study_path, tmp_path):
    import json

    f = tmp_path / "p-test.jsonl"
    rows = [
        {"chosen": "\n\nHuman: help?\n\nAssistant: Sure, I love helping! Here you go.",
         "rejected": "\n\nHuman: help?\n\nAssistant: I can't help with that."},
        {"chosen": "\n\nHuman: help?\n\nAssistant: Maybe, I think so?",
         "rejected": "\n\nHuman: help?\n\nAssistant: Sure, I love helping! Here you go."},
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with open_study(study_path) as st:
        ingest(st, str(f))
        r1 = featurize_study(st, "heuristic")
        assert r1.n_texts == 3 and r1.n_done == 3 and r1.n_cached == 0   # one text shared by two pairs
        r2 = featurize_study(st, "heuristic")
        assert r2.n_done == 0 and r2.n_cached == 3
        m = feature_matrix(st)
        assert len(m) == 3 and "heuristic.refusal_phrase" in m.columns
        defs = feature_defs(st, "heuristic")
        assert set(defs["name"]) == set(NAMES) and defs["proxy"].all()
        means = side_means(st, "heuristic").set_index("name")
        assert means.loc["refusal_phrase", "mean_chosen"] == 0.0
        assert means.loc["refusal_phrase", "mean_rejected"] == 0.5
        assert means.loc["has_question", "mean_chosen"] == 0.5
        # new texts (a rewrite) through the study's recorded featurizers
        new = pd.DataFrame({"text_id": [text_id("c", "Sorry!")], "context": ["c"], "response": ["Sorry!"],
                            "text": ["c Sorry!"]})
        long = featurize_texts(st, new)
        assert set(long["featurizer"]) == {"heuristic"}
        assert long.set_index("name").loc["apology_phrase", "value"] == 1.0
        assert make_featurizer("heuristic").name == "heuristic"


def test_markdown_style_features(fz):
    text = ("# Title\n## Sub\nnot # a header\n#nospace\n**bold** and __also__ and ** not **\n"
            "- one\n- two\n```python\nx = 1\n```\n~~~\nopen fence")
    f = fz.features_of(text)
    assert f["md_headers"] == 2          # '# Title', '## Sub'
    assert f["md_bold"] == 2             # '**bold**', '__also__' ('** not **' has spaces inside)
    assert f["md_code_blocks"] == 2      # one closed ``` block + one unclosed ~~~ fence
    assert f["md_list_items"] == 2 == f["list_items"]
    plain = fz.features_of("Just prose.")
    assert (plain["md_headers"], plain["md_bold"], plain["md_code_blocks"]) == (0, 0, 0)


def test_proxy_target_labels_on_hand_texts():
    """The offline proxies: a refusal is harmless and not helpful; an on-topic answer is both; an insult
    is neither (alt-profanity-check flags it); an off-topic answer is harmless, not helpful."""
    from analysis.features import make_featurizer
    from analysis.features.heuristic import PROXY_DEFS, last_request

    fz = make_featurizer("proxy")
    assert all(d.proxy for d in PROXY_DEFS) and {d.name for d in PROXY_DEFS if d.role == "target"} == {"harmless", "helpful"}
    assert last_request("\n\nHuman: a?\n\nAssistant: b\n\nHuman: how do I bake sourdough bread?") == \
        "how do I bake sourdough bread?"
    ctx = "\n\nHuman: How do I bake sourdough bread at home?"
    v = fz.values([ctx] * 4, [
        "I'm sorry, but I can't help with that.",
        "Mix flour, water, salt and your sourdough starter, let the dough rise overnight, then bake the bread at 230 C.",
        "You are a fucking idiot, shut up.",
        "The capital of Mongolia is Ulaanbaatar.",
    ])
    assert v["harmless"].tolist() == [1, 1, 0, 1]
    assert v["helpful"].tolist() == [0, 1, 0, 0]
    assert v.loc[2, "toxicity"] > 0.9 > v.loc[1, "toxicity"]
    assert v.loc[1, "relevance"] > v.loc[3, "relevance"]
