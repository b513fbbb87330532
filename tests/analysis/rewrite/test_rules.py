"""Each rule perturbation changes what it says it changes and keeps the rest."""

from __future__ import annotations

import numpy as np
import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from analysis.errors import RmtuiError
from analysis.rewrite import RULE_PERTURBATIONS, make_rewriter
from analysis.rewrite.rules import lower_first, split_sentences

NEUTRAL = ("You can bake bread with flour, water, salt and yeast. Mix them and let the dough rise "
           "for two hours. Then bake it at 230 degrees for forty minutes.")
CASUAL = "Yeah, I don't know. It's kinda hard, but we'll figure out a lot of stuff."
FORMAL = "However, I do not know. It is approximately ten miles, therefore you cannot walk there."
GLOOMY = "That is a terrible idea and a bad problem. It will probably fail."
CHEERY = "That is a great idea and a good plan. It will be fun and easy."

_vader = SentimentIntensityAnalyzer()


def rw(pert, text, seed=0, **kw):
    return make_rewriter(f"rules:{pert}", **kw).rewrite("\n\nHuman: hi", text, np.random.default_rng(seed))


def compound(s):
    return _vader.polarity_scores(s)["compound"]


def test_catalogue_is_complete():
    assert RULE_PERTURBATIONS == ["more_positive", "more_negative", "more_formal", "plainer", "hedging",
                                  "apology", "polite_preamble", "lengthen", "list_format", "typo_noise"]
    with pytest.raises(RmtuiError):
        make_rewriter("rules:shouting")
    with pytest.raises(RmtuiError):
        make_rewriter("poetry")


@pytest.mark.parametrize("text", [NEUTRAL, GLOOMY])
def test_more_positive_moves_sentiment_up_and_keeps_sentences(text):
    res = rw("more_positive", text)
    assert compound(res.new_response) > compound(text) + 0.3
    assert res.params == {"perturbation": "more_positive"}
    if text is NEUTRAL:
        for s in split_sentences(text):
            assert s in res.new_response
    else:
        assert "terrible" not in res.new_response and "softened" in res.notes
        assert "It will probably fall short." in res.new_response


@pytest.mark.parametrize("text", [NEUTRAL, CHEERY])
def test_more_negative_moves_sentiment_down(text):
    res = rw("more_negative", text)
    assert compound(res.new_response) < compound(text) - 0.3
    if text is NEUTRAL:
        for s in split_sentences(text):
            assert s in res.new_response
    else:
        assert "great" not in res.new_response and "a passable plan" in res.new_response


def test_more_formal_expands_contractions_and_casual_words():
    res = rw("more_formal", CASUAL)
    assert res.new_response == "Yes, I do not know. It is somewhat hard, but we will determine a great deal of things."
    assert "'" not in res.new_response
    # nothing to change: said so, text kept
    res2 = rw("more_formal", NEUTRAL)
    assert res2.new_response == NEUTRAL and "no contraction" in res2.notes
    # curly apostrophes count too
    assert rw("more_formal", "I don\u2019t think so.").new_response == "I do not think so."


def test_plainer_is_the_reverse():
    res = rw("plainer", FORMAL)
    assert res.new_response == "But, I don't know. It's about ten miles, so you can't walk there."
    assert rw("plainer", NEUTRAL).new_response == NEUTRAL
    # round trip on the contraction tables
    assert rw("plainer", rw("more_formal", "I don't know, it's late.").new_response).new_response == \
        "I don't know, it's late."


def test_hedging_adds_hedges_and_keeps_sentences():
    res = rw("hedging", NEUTRAL)
    sents = split_sentences(NEUTRAL)
    assert res.new_response.startswith("I think you can bake bread")
    assert "It may be that then bake it at 230 degrees" in res.new_response
    assert sents[1] in res.new_response
    one = rw("hedging", "I am not sure.").new_response
    assert one == "I think I am not sure."          # the pronoun I keeps its case


def test_apology_preamble_and_lengthen():
    assert rw("apology", NEUTRAL).new_response == "I'm sorry, but y" + NEUTRAL[1:]
    assert rw("apology", "NASA did it.").new_response == "I'm sorry, but NASA did it."
    assert rw("polite_preamble", NEUTRAL).new_response == "Thanks for your question! " + NEUTRAL
    res = rw("lengthen", NEUTRAL)
    assert res.new_response.startswith(NEUTRAL)
    assert res.new_response.endswith("In short, you can bake bread with flour, water, salt and yeast.")
    assert len(res.new_response.split()) > len(NEUTRAL.split())
    assert rw("lengthen", "no stop at the end").new_response == "no stop at the end. In short, no stop at the end."


def test_list_format_one_bullet_per_sentence():
    res = rw("list_format", NEUTRAL)
    lines = res.new_response.split("\n")
    assert lines == ["- " + s for s in split_sentences(NEUTRAL)]
    assert "one-item" in rw("list_format", "Just one.").notes


def test_typo_noise_is_seeded_and_keeps_letters():
    a = rw("typo_noise", NEUTRAL, seed=3, typo_rate=0.3)
    b = rw("typo_noise", NEUTRAL, seed=3, typo_rate=0.3)
    c = rw("typo_noise", NEUTRAL, seed=4, typo_rate=0.3)
    assert a.new_response == b.new_response != NEUTRAL
    assert c.new_response != a.new_response
    assert sorted(a.new_response) == sorted(NEUTRAL)          # letters swapped, none lost
    assert len(a.new_response.split()) == len(NEUTRAL.split())
    changed = [x for x, y in zip(a.new_response.split(), NEUTRAL.split()) if x != y]
    assert 1 <= len(changed) <= 12
    assert a.params == {"perturbation": "typo_noise", "typo_rate": 0.3}
    # a low rate still makes one typo when a word qualifies
    low = rw("typo_noise", "Bake the bread.", typo_rate=0.001)
    assert low.new_response != "Bake the bread." and "1 typo" in low.notes


def test_random_rule_draws_from_rng_and_records_it():
    r = make_rewriter("rules")
    drawn = {r.rewrite("", NEUTRAL, np.random.default_rng(s)).params["perturbation"] for s in range(60)}
    assert drawn == set(RULE_PERTURBATIONS)
    assert r.params == {"perturbation": "random", "typo_rate": 0.05}
    assert make_rewriter("rules", perturbation="apology").spec == "rules:apology"


def test_empty_and_helpers():
    for p in RULE_PERTURBATIONS:
        res = rw(p, "")
        assert isinstance(res.new_response, str)
    assert split_sentences("Hi there! How are you?\nFine.") == ["Hi there!", "How are you?", "Fine."]
    assert lower_first("Bread") == "bread" and lower_first("I'm") == "I'm" and lower_first("USA") == "USA"


def test_manual_rewriter():
    m = make_rewriter("manual", text="  A new answer.  ")
    res = m.rewrite("", "old", None)
    assert res.new_response == "A new answer." and "text_digest" in res.params
    with pytest.raises(RmtuiError):
        make_rewriter("manual").rewrite("", "old", None)
    with pytest.raises(RmtuiError):
        make_rewriter("manual", text="   ").rewrite("", "old", None)
