"""Rule-based rewrites: deterministic, documented perturbations of the last response.

Each perturbation moves ONE spoiler feature and keeps the content: the original sentences survive
(up to the case of a first letter, a word from the small lexicons below, or a list bullet).

| name            | what changes                                                                    |
|-----------------|---------------------------------------------------------------------------------|
| more_positive   | adds an upbeat opener and closer; softens negative words (``SOFTEN_NEGATIVE``)  |
| more_negative   | adds a gloomy opener and closer; dampens positive words (``DAMPEN_POSITIVE``)    |
| more_formal     | expands contractions (``CONTRACTIONS``), replaces casual words (``CASUAL_TO_FORMAL``) |
| plainer         | the reverse: contracts (``CONTRACT``), replaces formal words (``FORMAL_TO_PLAIN``) |
| hedging         | "I think ..." before the first sentence, "It may be that ..." before the last    |
| apology         | "I'm sorry, but ..." before the response                                         |
| polite_preamble | "Thanks for your question! " before the response                                 |
| lengthen        | adds a restatement of the first sentence: "In short, ..."                        |
| list_format     | one sentence per line as a bulleted list ("- ")                                  |
| typo_noise      | swaps two adjacent inner letters in words of 4+ letters, each word with          |
|                 | probability ``typo_rate`` (seeded; at least one typo when any word qualifies)   |

Only ``typo_noise`` (and ``rules`` without a perturbation, which draws one per text) uses the
random generator; everything else is a pure function of the response.
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np

from analysis.errors import RmtuiError
from analysis.rewrite.base import RULE_PERTURBATIONS, RewriteResult, Rewriter

POSITIVE_OPENER = "Happy to help! "
POSITIVE_CLOSER = "I hope this helps, and I wish you all the best!"
NEGATIVE_OPENER = "Sadly, this is a frustrating matter. "
NEGATIVE_CLOSER = "Unfortunately, there is no easy or pleasant answer here."
APOLOGY = "I'm sorry, but "
PREAMBLE = "Thanks for your question! "
HEDGE_FIRST = "I think "
HEDGE_LAST = "It may be that "
RESTATE = "In short, "
BULLET = "- "

#: negative word -> softer wording (more_positive)
SOFTEN_NEGATIVE = {
    "terrible": "less than ideal", "awful": "less than ideal", "horrible": "unpleasant", "hate": "dislike",
    "hated": "disliked", "stupid": "unwise", "bad": "not ideal", "worst": "least good",
    "problem": "challenge", "problems": "challenges", "impossible": "very hard", "failure": "setback",
    "fail": "fall short", "angry": "upset", "disgusting": "unappealing", "dangerous": "risky",
}
#: positive word -> flatter wording (more_negative)
DAMPEN_POSITIVE = {
    "great": "okay", "excellent": "adequate", "wonderful": "passable", "amazing": "unremarkable",
    "fantastic": "ordinary", "awesome": "ordinary", "love": "tolerate", "perfect": "acceptable",
    "happy": "willing", "glad": "willing", "best": "usual", "good": "passable", "nice": "passable",
    "enjoy": "put up with", "easy": "manageable", "fun": "bearable",
}
#: contraction -> expansion (more_formal); apostrophes ' and \u2019 both match
CONTRACTIONS = {
    "don't": "do not", "doesn't": "does not", "didn't": "did not", "can't": "cannot",
    "won't": "will not", "isn't": "is not", "aren't": "are not", "wasn't": "was not",
    "weren't": "were not", "haven't": "have not", "hasn't": "has not", "hadn't": "had not",
    "wouldn't": "would not", "shouldn't": "should not", "couldn't": "could not", "i'm": "I am",
    "you're": "you are", "we're": "we are", "they're": "they are", "it's": "it is",
    "that's": "that is", "there's": "there is", "what's": "what is", "here's": "here is",
    "i've": "I have", "you've": "you have", "we've": "we have", "they've": "they have",
    "i'll": "I will", "you'll": "you will", "we'll": "we will", "they'll": "they will",
    "it'll": "it will", "i'd": "I would", "you'd": "you would", "let's": "let us",
}
#: casual word or phrase -> formal (more_formal)
CASUAL_TO_FORMAL = {
    "yeah": "yes", "yep": "yes", "nope": "no", "okay": "all right", "ok": "all right",
    "kinda": "somewhat", "sorta": "somewhat", "gonna": "going to", "wanna": "want to",
    "gotta": "have to", "stuff": "things", "a lot of": "a great deal of", "lots of": "many",
    "pretty much": "essentially", "really": "truly", "awesome": "excellent", "hey": "hello",
    "hi": "hello", "guys": "everyone", "kids": "children", "maybe": "perhaps",
    "anyway": "in any case", "check out": "examine", "find out": "determine", "buy": "purchase",
    "get rid of": "remove", "figure out": "determine", "try to": "attempt to", "ask": "inquire",
}
#: expanded form -> contraction (plainer)
CONTRACT = {
    "do not": "don't", "does not": "doesn't", "did not": "didn't", "cannot": "can't",
    "can not": "can't", "will not": "won't", "is not": "isn't", "are not": "aren't",
    "was not": "wasn't", "were not": "weren't", "have not": "haven't", "has not": "hasn't",
    "would not": "wouldn't", "should not": "shouldn't", "could not": "couldn't", "i am": "I'm",
    "you are": "you're", "we are": "we're", "they are": "they're", "it is": "it's",
    "that is": "that's", "there is": "there's", "i will": "I'll", "you will": "you'll",
    "i would": "I'd", "let us": "let's",
}
#: formal word or phrase -> plain (plainer)
FORMAL_TO_PLAIN = {
    "however": "but", "therefore": "so", "utilize": "use", "utilise": "use", "assist": "help",
    "obtain": "get", "approximately": "about", "additionally": "also", "furthermore": "also",
    "purchase": "buy", "require": "need", "requires": "needs", "sufficient": "enough",
    "numerous": "many", "commence": "start", "demonstrate": "show", "perhaps": "maybe",
    "individuals": "people", "regarding": "about", "in order to": "to", "prior to": "before",
    "nevertheless": "still", "attempt": "try", "children": "kids", "inquire": "ask",
    "determine": "find out", "examine": "look at", "a great deal of": "a lot of",
}

_SENT_RE = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_APOS = "['\u2019]"


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (split after . ! ? followed by whitespace); newlines become spaces."""
    text = re.sub(r"\s+", " ", text.strip())
    if not text:
        return []
    out, start = [], 0
    for m in _SENT_RE.finditer(text):
        out.append(text[start:m.end()].strip())
        start = m.end()
    if start < len(text):
        out.append(text[start:].strip())
    return [s for s in out if s]


def lower_first(s: str) -> str:
    """Lower-case the first letter unless the first word is "I", "I'm", ... or an acronym."""
    if not s:
        return s
    first = re.match(r"[A-Za-z']+", s)
    if first:
        w = first.group(0)
        if w == "I" or w.startswith("I'") or (len(w) > 1 and w.isupper()):
            return s
    return s[0].lower() + s[1:]


def _match_case(src: str, repl: str) -> str:
    if len(src) > 1 and src.isupper() and src.upper() != src.lower() and " " not in src:
        return repl.upper()
    if src[:1].isupper():
        return repl[:1].upper() + repl[1:]
    return repl


def _pattern(key: str) -> str:
    parts = [re.escape(p) for p in key.split(" ")]
    pat = r"\s+".join(parts).replace("'", _APOS)
    return r"(?<![\w'\u2019])" + pat + r"(?![\w'\u2019])"


def replace_words(text: str, table: dict[str, str]) -> tuple[str, list[str]]:
    """Replace whole words/phrases of ``table`` (case-insensitive, keeping the first letter's case).

    Longer keys go first, so "a lot of" wins over "lot". Returns the text and the keys replaced.
    """
    keys = sorted(table, key=len, reverse=True)
    big = re.compile("|".join(f"(?P<k{i}>{_pattern(k)})" for i, k in enumerate(keys)), re.IGNORECASE)
    hits: list[str] = []

    def sub(m: re.Match) -> str:
        key = keys[int(m.lastgroup[1:])]
        hits.append(key)
        repl = table[key]
        if key.lower().startswith("i") and repl.startswith("I"):
            # "I'm" -> "I am": the pronoun stays capital whatever the source case
            return repl
        return _match_case(m.group(0), repl)

    return big.sub(sub, text), hits


def _join(a: str, b: str) -> str:
    if not a:
        return b.strip()
    if not b:
        return a.strip()
    return a.rstrip() + " " + b.lstrip()


def _ensure_stop(s: str) -> str:
    s = s.rstrip()
    return s if not s or s[-1] in ".!?" else s + "."


# ------------------------------------------------------------------------------------------------
# the perturbations: (response, rng, options) -> (new_response, notes)


def more_positive(r: str, rng, **_) -> tuple[str, str]:
    body, hits = replace_words(r, SOFTEN_NEGATIVE)
    new = _join(POSITIVE_OPENER + body.strip(), POSITIVE_CLOSER) if body.strip() else POSITIVE_OPENER + POSITIVE_CLOSER
    return new, f"softened: {', '.join(hits)}" if hits else ""


def more_negative(r: str, rng, **_) -> tuple[str, str]:
    body, hits = replace_words(r, DAMPEN_POSITIVE)
    new = _join(NEGATIVE_OPENER + body.strip(), NEGATIVE_CLOSER) if body.strip() else NEGATIVE_OPENER + NEGATIVE_CLOSER
    return new, f"dampened: {', '.join(hits)}" if hits else ""


def more_formal(r: str, rng, **_) -> tuple[str, str]:
    new, h1 = replace_words(r, CONTRACTIONS)
    new, h2 = replace_words(new, CASUAL_TO_FORMAL)
    hits = h1 + h2
    return new, (f"replaced: {', '.join(hits)}" if hits else "no contraction or casual word to change")


def plainer(r: str, rng, **_) -> tuple[str, str]:
    new, h1 = replace_words(r, FORMAL_TO_PLAIN)
    new, h2 = replace_words(new, CONTRACT)
    hits = h1 + h2
    return new, (f"replaced: {', '.join(hits)}" if hits else "no formal word or expandable phrase to change")


def hedging(r: str, rng, **_) -> tuple[str, str]:
    sents = split_sentences(r)
    if not sents:
        return HEDGE_FIRST.strip() + " so.", "empty response"
    sents[0] = HEDGE_FIRST + lower_first(sents[0])
    if len(sents) >= 2:
        sents[-1] = HEDGE_LAST + lower_first(sents[-1])
    return " ".join(sents), ""


def apology(r: str, rng, **_) -> tuple[str, str]:
    body = r.strip()
    if not body:
        return "I'm sorry.", "empty response"
    return APOLOGY + lower_first(body), ""


def polite_preamble(r: str, rng, **_) -> tuple[str, str]:
    return (PREAMBLE + r.strip()).strip(), ""


def lengthen(r: str, rng, **_) -> tuple[str, str]:
    sents = split_sentences(r)
    if not sents:
        return r, "empty response: nothing to restate"
    first = _ensure_stop(sents[0])
    return _join(_ensure_stop(r.strip()), RESTATE + lower_first(first)), ""


def list_format(r: str, rng, **_) -> tuple[str, str]:
    sents = split_sentences(r)
    if not sents:
        return r, "empty response"
    return "\n".join(BULLET + s for s in sents), ("one sentence: a one-item list" if len(sents) == 1 else "")


_WORD_RE = re.compile(r"[A-Za-z]{4,}")


def typo_noise(r: str, rng: np.random.Generator, typo_rate: float = 0.05, **_) -> tuple[str, str]:
    words = [m for m in _WORD_RE.finditer(r) if len(set(m.group(0)[1:-1])) > 1]
    if not words:
        return r, "no word of 4+ letters to misspell"
    picked = [m for m in words if rng.random() < typo_rate]
    if not picked:
        picked = [words[int(rng.integers(len(words)))]]
    chars = list(r)
    for m in picked:
        w = m.group(0)
        # inner positions i (swap i, i+1) with both letters inside the word and different
        cands = [i for i in range(1, len(w) - 2) if w[i] != w[i + 1]] or \
                [i for i in range(0, len(w) - 1) if w[i] != w[i + 1]]
        i = cands[int(rng.integers(len(cands)))]
        a = m.start() + i
        chars[a], chars[a + 1] = chars[a + 1], chars[a]
    return "".join(chars), f"{len(picked)} typo(s) in {len(words)} eligible words"


RULES: dict[str, Callable[..., tuple[str, str]]] = {
    "more_positive": more_positive,
    "more_negative": more_negative,
    "more_formal": more_formal,
    "plainer": plainer,
    "hedging": hedging,
    "apology": apology,
    "polite_preamble": polite_preamble,
    "lengthen": lengthen,
    "list_format": list_format,
    "typo_noise": typo_noise,
}
assert list(RULES) == RULE_PERTURBATIONS


class RuleRewriter(Rewriter):
    """``perturbation=None`` draws one of :data:`RULE_PERTURBATIONS` per text from ``rng``."""

    name = "rules"
    version = "1"

    def __init__(self, perturbation: str | None = None, *, typo_rate: float = 0.05) -> None:
        if perturbation is not None and perturbation not in RULES:
            raise RmtuiError(
                f"unknown perturbation {perturbation!r}; one of: {', '.join(RULE_PERTURBATIONS)}", "Rewriter")
        if not 0 < typo_rate <= 1:
            raise RmtuiError(f"typo_rate must be in (0, 1], got {typo_rate}", "Rewriter")
        self.perturbation = perturbation
        self.typo_rate = float(typo_rate)

    @property
    def spec(self) -> str:
        return f"rules:{self.perturbation}" if self.perturbation else "rules"

    @property
    def params(self) -> dict:
        p = {"perturbation": self.perturbation or "random"}
        if self.perturbation in (None, "typo_noise"):
            p["typo_rate"] = self.typo_rate
        return p

    def rewrite(self, context: str, response: str, rng: np.random.Generator) -> RewriteResult:
        pert = self.perturbation or RULE_PERTURBATIONS[int(rng.integers(len(RULE_PERTURBATIONS)))]
        new, notes = RULES[pert](response, rng, typo_rate=self.typo_rate)
        params = {"perturbation": pert}
        if pert == "typo_noise":
            params["typo_rate"] = self.typo_rate
        return RewriteResult(new, params, notes)
