"""Offline heuristic features of the LAST assistant response: transparent, deterministic, fast.

Every feature here is a *proxy* (``proxy=True``, role ``spoiler``): a cheap, documented measurement,
never one of the properties an LLM judge labels (so none is called ``harmless`` or ``helpful``).
Before matching, the response is normalised: curly apostrophes (U+2018/U+2019) become ``'``.
Phrase matching is case-insensitive. The table in docs/features.md lists the same definitions.

=====================  ==========  ===========================================================
feature                kind        how it is computed (on the last response)
=====================  ==========  ===========================================================
len_tokens             count       matches of the regex ``\\w+|[^\\w\\s]`` (a run of word
                                   characters, or one punctuation/symbol character)
len_words              count       matches of ``[^\\W_]+(?:['-][^\\W_]+)*`` (words; "don't",
                                   "well-known" count once)
list_items             count       lines matching ``^\\s*(?:[-*+•]|\\d{1,3}[.)])\\s+\\S``
                                   (markdown bullets or numbered items)
n_questions            count       number of ``?`` characters (a run such as ``??`` counts once)
has_question           binary      1 if n_questions > 0
refusal_phrase         binary      1 if any pattern of ``REFUSAL_PATTERNS`` matches (a proxy
                                   signal related to harmlessness, not a judgement of it)
apology_phrase         binary      1 if any pattern of ``APOLOGY_PATTERNS`` matches
hedges                 count       whole-word matches of the phrases in ``HEDGE_PATTERNS``
sentiment_lexicon      ordinal     VADER compound c of the response: +1 if c >= 0.05,
                                   -1 if c <= -0.05, else 0 (VADER's own thresholds)
sentiment_compound     continuous  VADER compound score in [-1, 1]
readability_fre        continuous  textstat 0.7.8 ``flesch_reading_ease(response)``
                                   (0.0 for an empty response, as textstat returns)
second_person          count       tokens equal to you, your, yours, yourself, yourselves, you'd,
                                   you'll, you're, you've, ya, u (case-insensitive whole words)
has_url                binary      1 if ``https?://\\S+`` or ``\\bwww\\.\\S+`` matches
has_code               binary      1 if the response contains a fenced block (```) or an inline
                                   code span (`...` on one line)
md_headers             count       lines matching ``^\\s{0,3}#{1,6}\\s+\\S`` (markdown ATX headers)
md_bold                count       spans ``**text**`` or ``__text__`` (text without the marker, one line)
md_code_blocks         count       fenced code blocks: lines opening with ``` or ~~~, halved (an
                                   unclosed fence counts as one block)
md_list_items          count       the same lines as ``list_items`` (its markdown name, so the four
                                   style controls leaderboards use sit together)
=====================  ==========  ===========================================================
"""

from __future__ import annotations

import re
from typing import Iterable

import pandas as pd

from analysis.features.base import FeatureDef, Featurizer

TOKEN_RE = re.compile(r"\w+|[^\w\s]")
WORD_RE = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")
LIST_ITEM_RE = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,3}[.)])\s+\S", re.M)
QUESTION_RE = re.compile(r"\?+")
URL_RE = re.compile(r"https?://\S+|\bwww\.\S+", re.I)
CODE_RE = re.compile(r"```|`[^`\n]+`")
MD_HEADER_RE = re.compile(r"^\s{0,3}#{1,6}\s+\S", re.M)
MD_BOLD_RE = re.compile(r"\*\*(?=\S)[^*\n]+?(?<=\S)\*\*|__(?=\S)[^_\n]+?(?<=\S)__")
MD_FENCE_RE = re.compile(r"^\s{0,3}(?:```|~~~)", re.M)

#: refusal phrasing (case-insensitive regexes, any match gives 1)
REFUSAL_PATTERNS = [
    r"\bi (?:can't|cannot|can not|won't|will not|refuse to|must decline|have to decline)\b",
    r"\bi(?:'m| am) (?:not able to|unable to|not going to|not comfortable|not willing to)\b",
    r"\bi (?:don't|do not) (?:feel comfortable|think i (?:should|can)|want to (?:help|do|answer))\b",
    r"\bi(?:'d| would) (?:rather not|prefer not to)\b",
    r"\bi (?:shouldn't|should not) (?:help|answer|do|say|provide)\b",
    r"\bas an ai\b",
    r"\b(?:that's|that is|this is) not something i (?:can|will|would)\b",
    r"\bi'm sorry,? but\b|\bi am sorry,? but\b",
]
#: apology phrasing
APOLOGY_PATTERNS = [
    r"\bsorry\b", r"\bapologi[sz](?:e|es|ed|ing)\b", r"\bapology\b", r"\bapologies\b",
    r"\bforgive me\b", r"\bi regret\b",
]
#: hedging words and phrases (whole words, case-insensitive; each occurrence counts once)
HEDGE_PATTERNS = [
    "maybe", "perhaps", "possibly", "probably", "might", "could be", "i think", "i believe", "i guess",
    "i suppose", "it seems", "seems to", "seems like", "seem to", "seem like", "sort of", "kind of", "not sure",
    "i'm not certain", "generally", "usually", "likely", "unlikely", "in my opinion", "it depends",
]
SECOND_PERSON = {"you", "your", "yours", "yourself", "yourselves", "you'd", "you'll", "you're", "you've", "ya", "u"}
SECOND_PERSON_RE = re.compile(r"(?<![\w'])(?:" + "|".join(sorted((re.escape(w) for w in SECOND_PERSON), key=len, reverse=True)) + r")(?![\w'])", re.I)

SENTIMENT_THRESHOLD = 0.05

_REFUSAL_RE = re.compile("|".join(REFUSAL_PATTERNS), re.I)
_APOLOGY_RE = re.compile("|".join(APOLOGY_PATTERNS), re.I)
_HEDGE_RE = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in sorted(HEDGE_PATTERNS, key=len, reverse=True)) + r")\b", re.I)

DEFS = [
    FeatureDef("len_tokens", "count", "spoiler", True,
               r"Tokens of the last response: matches of the regex \w+|[^\w\s] (word runs and single symbols)."),
    FeatureDef("len_words", "count", "spoiler", True,
               "Words of the last response: letter/digit runs, joined across ' and - (don't = 1 word)."),
    FeatureDef("list_items", "count", "spoiler", True,
               "Lines that start a markdown bullet (-, *, +, •) or a numbered item (1. or 1))."),
    FeatureDef("n_questions", "count", "spoiler", True, "Question marks in the last response (a run ?? counts once)."),
    FeatureDef("has_question", "binary", "spoiler", True, "1 if the last response contains a question mark."),
    FeatureDef("refusal_phrase", "binary", "spoiler", True,
               "1 if the response uses refusal phrasing (I can't / I won't / I'm not able to / as an AI ...; "
               "documented list). A lexical proxy related to harmlessness, not a judgement of it."),
    FeatureDef("apology_phrase", "binary", "spoiler", True, "1 if the response apologises (sorry, apologise, forgive me ...)."),
    FeatureDef("hedges", "count", "spoiler", True,
               "Hedging words/phrases (maybe, perhaps, probably, might, I think, not sure, it depends ...)."),
    FeatureDef("sentiment_lexicon", "ordinal", "spoiler", True,
               "VADER compound c: +1 if c >= 0.05, -1 if c <= -0.05, else 0 (lexicon proxy of sentiment)."),
    FeatureDef("sentiment_compound", "continuous", "spoiler", True, "VADER compound score of the response, in [-1, 1]."),
    FeatureDef("readability_fre", "continuous", "spoiler", True,
               "Flesch reading ease of the response (textstat 0.7.8; 0 for an empty response)."),
    FeatureDef("second_person", "count", "spoiler", True, "Words addressing the reader: you, your, yours, yourself, you're ..."),
    FeatureDef("has_url", "binary", "spoiler", True, "1 if the response contains a URL (http(s)://... or www....)."),
    FeatureDef("has_code", "binary", "spoiler", True, "1 if the response contains a ``` fence or an inline `code` span."),
    FeatureDef("md_headers", "count", "spoiler", True, "Markdown headers: lines starting with 1-6 # and a space."),
    FeatureDef("md_bold", "count", "spoiler", True, "Markdown bold spans: **text** or __text__ on one line."),
    FeatureDef("md_code_blocks", "count", "spoiler", True,
               "Fenced code blocks (``` or ~~~ fences, pairs; an unclosed fence counts as one)."),
    FeatureDef("md_list_items", "count", "spoiler", True,
               "Markdown list items (same lines as list_items), one of the four style controls."),
]
NAMES = [d.name for d in DEFS]


def _normalise(s: str) -> str:
    return (s or "").replace("\u2019", "'").replace("\u2018", "'")


class HeuristicFeaturizer(Featurizer):
    """The offline heuristics above, on the last response of each text."""

    name = "heuristic"
    version = "2"     # 2: markdown style features (md_headers, md_bold, md_code_blocks, md_list_items)
    cheap = True
    offline = True

    def __init__(self, study=None, workers: int | None = None) -> None:
        """``workers`` > 1 computes chunks in that many spawned processes. None (auto): one process,
        or up to 8 when there are at least 4 CPU cores (only used from 20,000 texts on)."""
        import os

        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._vader = SentimentIntensityAnalyzer()
        if workers is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            self.workers = min(8, cores) if cores >= 4 else 1
            self._auto = True
        else:
            self.workers = max(1, int(workers))
            self._auto = False

    def feature_defs(self) -> list[FeatureDef]:
        return list(DEFS)

    def config(self) -> dict:
        import textstat
        import vaderSentiment

        return {"spec": "heuristic", "version": self.version, "token_regex": TOKEN_RE.pattern,
                "sentiment_threshold": SENTIMENT_THRESHOLD, "textstat": ".".join(map(str, textstat.__version__))
                if isinstance(getattr(textstat, "__version__", None), tuple) else str(getattr(textstat, "__version__", "")),
                "vaderSentiment": getattr(vaderSentiment, "__version__", "3.3.2")}

    def features_of(self, response: str) -> dict[str, float]:
        """All heuristic features of one response (a dict name -> value)."""
        import textstat

        r = _normalise(response)
        n_q = len(QUESTION_RE.findall(r))
        c = self._vader.polarity_scores(r)["compound"] if r.strip() else 0.0
        sent = 1 if c >= SENTIMENT_THRESHOLD else (-1 if c <= -SENTIMENT_THRESHOLD else 0)
        fre = float(textstat.flesch_reading_ease(r)) if r.strip() else 0.0
        return {
            "len_tokens": len(TOKEN_RE.findall(r)),
            "len_words": len(WORD_RE.findall(r)),
            "list_items": len(LIST_ITEM_RE.findall(r)),
            "n_questions": n_q,
            "has_question": int(n_q > 0),
            "refusal_phrase": int(_REFUSAL_RE.search(r) is not None),
            "apology_phrase": int(_APOLOGY_RE.search(r) is not None),
            "hedges": len(_HEDGE_RE.findall(r)),
            "sentiment_lexicon": sent,
            "sentiment_compound": float(c),
            "readability_fre": fre,
            "second_person": len(SECOND_PERSON_RE.findall(r)),
            "has_url": int(URL_RE.search(r) is not None),
            "has_code": int(CODE_RE.search(r) is not None),
            "md_headers": len(MD_HEADER_RE.findall(r)),
            "md_bold": len(MD_BOLD_RE.findall(r)),
            "md_code_blocks": (len(MD_FENCE_RE.findall(r)) + 1) // 2,
            "md_list_items": len(LIST_ITEM_RE.findall(r)),
        }

    def featurize(self, texts: pd.DataFrame) -> pd.DataFrame:
        ids = list(texts["text_id"])
        rows = [self.features_of(r if isinstance(r, str) else "") for r in texts["response"]]
        return _long(ids, rows)

    def featurize_iter(self, texts: pd.DataFrame, *, cancel=None):
        if self.workers <= 1 or len(texts) < (20000 if self._auto else 4000):
            yield from super().featurize_iter(texts, cancel=cancel)
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        from analysis.features.base import Chunk

        size = self.chunk_size
        parts = [texts.iloc[i:i + size] for i in range(0, len(texts), size)]
        with ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn")) as ex:
            futs = [ex.submit(_rows_for, [r if isinstance(r, str) else "" for r in p["response"]]) for p in parts]
            for part, fut in zip(parts, futs):
                if cancel is not None and cancel.is_set():
                    for f in futs:
                        f.cancel()
                    return
                yield Chunk(_long(list(part["text_id"]), fut.result()), [], len(part))


def _long(ids: list[str], rows: list[dict]) -> pd.DataFrame:
    wide = pd.DataFrame(rows, columns=NAMES, dtype="float64")
    wide.insert(0, "text_id", ids)
    return wide.melt(id_vars="text_id", var_name="name", value_name="value")


_WORKER: "HeuristicFeaturizer | None" = None


def _rows_for(responses: list[str]) -> list[dict]:
    global _WORKER
    if _WORKER is None:
        _WORKER = HeuristicFeaturizer()
    return [_WORKER.features_of(r) for r in responses]


def featurize_responses(responses: Iterable[str]) -> pd.DataFrame:
    """Convenience: a wide frame of heuristic features for plain response strings."""
    fz = HeuristicFeaturizer()
    return pd.DataFrame([fz.features_of(r) for r in responses], columns=NAMES)


# -- offline proxy target labels (harmless, helpful) ---------------------------------------------------
#
# The paper's gamma needs (harmless, helpful) target labels from an LLM labeler. Offline, rmtui offers
# *proxies* (role target, proxy = TRUE, featurizer ``proxy``): cheap measurements that stand in for the
# labels so the gamma tables can be shown without an endpoint, with their agreement with the human
# labels measured (``proxy_agreement``) and the caveat printed wherever they are used.

PROXY_TOXIC = 0.5          # alt-profanity-check probability at or above which a response is "toxic"
PROXY_RELEVANT = 0.3       # MiniLM cosine(request, response) at or above which a response is "on topic"
HUMAN_TURN_RE = re.compile(r"(?:^|\n)\s*Human:\s*", re.I)
ASSISTANT_TURN_RE = re.compile(r"\n\s*Assistant:\s*", re.I)

PROXY_DEFS = [
    FeatureDef("harmless", "binary", "target", True,
               f"PROXY of harmlessness: 1 if the response uses refusal phrasing, or its alt-profanity-check "
               f"probability is below {PROXY_TOXIC}. Not an LLM judgement; see proxy_agreement."),
    FeatureDef("helpful", "binary", "target", True,
               f"PROXY of helpfulness: 1 if the response does not refuse and its MiniLM cosine with the last "
               f"human request is at least {PROXY_RELEVANT}. Not an LLM judgement; see proxy_agreement."),
    FeatureDef("toxicity", "continuous", "spoiler", True,
               "alt-profanity-check probability that the response is offensive (a lexical SVM, 0-1)."),
    FeatureDef("relevance", "continuous", "spoiler", True,
               "MiniLM (all-MiniLM-L6-v2) cosine between the last human request and the response."),
]
PROXY_NAMES = [d.name for d in PROXY_DEFS]


def last_request(context: str) -> str:
    """The last human turn of an hh-rlhf style context (the whole context when it has no turns)."""
    c = context or ""
    parts = HUMAN_TURN_RE.split(c)
    last = parts[-1] if len(parts) > 1 else c
    return ASSISTANT_TURN_RE.split(last)[0].strip()


class ProxyLabelFeaturizer(Featurizer):
    """Offline proxy target labels: ``proxy.harmless``, ``proxy.helpful`` (+ the toxicity and
    relevance they are made of). Runs on the CPU with the shipped MiniLM and alt-profanity-check."""

    name = "proxy"
    version = "1"
    cheap = True
    offline = True
    chunk_size = 1000

    def __init__(self, study=None, similarity_model: str | None = None) -> None:
        self.similarity_model = similarity_model

    def feature_defs(self) -> list[FeatureDef]:
        return list(PROXY_DEFS)

    def config(self) -> dict:
        return {"spec": "proxy", "version": self.version, "toxic_threshold": PROXY_TOXIC,
                "relevance_threshold": PROXY_RELEVANT, "similarity_model": self.similarity_model or "all-MiniLM-L6-v2",
                "toxicity": "alt-profanity-check predict_prob"}

    def values(self, contexts: list[str], responses: list[str]) -> pd.DataFrame:
        """Wide frame (one row per response) of the four proxy features."""
        import numpy as np

        from analysis.features.similarity import get_embedder
        from profanity_check import predict_prob

        resp = [_normalise(r if isinstance(r, str) else "") for r in responses]
        req = [last_request(c if isinstance(c, str) else "") for c in contexts]
        tox = np.asarray(predict_prob(resp), dtype=float) if resp else np.zeros(0)
        emb = get_embedder(self.similarity_model)
        if resp:  # a pair's two sides share their request: embed each distinct request once
            uniq = pd.Index(list(dict.fromkeys(req)))
            req_vec = emb.embed(list(uniq))[uniq.get_indexer(req)]
            rel = (req_vec * emb.embed(resp)).sum(1)
        else:
            rel = np.zeros(0)
        refuse = np.array([_REFUSAL_RE.search(r) is not None for r in resp], dtype=bool)
        empty = np.array([not r.strip() for r in resp], dtype=bool)
        harmless = refuse | (tox < PROXY_TOXIC)
        helpful = ~refuse & ~empty & (rel >= PROXY_RELEVANT)
        return pd.DataFrame({"harmless": harmless.astype(float), "helpful": helpful.astype(float),
                             "toxicity": tox, "relevance": np.clip(rel, -1, 1).astype(float)})

    def featurize(self, texts: pd.DataFrame) -> pd.DataFrame:
        ctx = list(texts["context"]) if "context" in texts.columns else [""] * len(texts)
        wide = self.values(ctx, list(texts["response"]))
        wide.insert(0, "text_id", list(texts["text_id"]))
        return wide.melt(id_vars="text_id", var_name="name", value_name="value")
