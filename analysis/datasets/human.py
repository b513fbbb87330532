"""What the humans said, beside what the RMs did: ties, votes and how split a pair was.

``human_summary`` feeds ``rmtui summary`` (and the app's overview): how many pairs are human ties (kept
out of agreement and regimes), how many had several annotators and split, and, among pairs the post-D
RM gets wrong, how many were unanimous (a clearer finding) versus split (the humans disagreed too).
"""

from __future__ import annotations

import pandas as pd

from analysis.store import Study
from analysis.store.pairs import human_vs_rm


def consensus_table(df: pd.DataFrame) -> list[dict]:
    """Per consensus class: pairs, post-D decided and disagreeing pairs, share disagreeing (of decided)."""
    rows = []
    for cls in ("unanimous", "split", "single", "tie"):
        g = df[df["consensus"] == cls]
        if not len(g):
            continue
        post = pd.to_numeric(g["agree_post"], errors="coerce")
        pre = pd.to_numeric(g["agree_pre"], errors="coerce")
        dec_post, dis_post = int(post.notna().sum()), int((post == 0).sum())
        rows.append({"consensus": cls, "n": int(len(g)),
                     "decided_post": dec_post, "disagree_post": dis_post,
                     "misalignment_post": (dis_post / dec_post) if dec_post else None,
                     "decided_pre": int(pre.notna().sum()), "disagree_pre": int((pre == 0).sum()),
                     "mean_annotator_agreement": (float(g["annotator_agreement"].mean())
                                                  if g["annotator_agreement"].notna().any() else None)})
    return rows


def human_summary(study: Study) -> dict:
    df = human_vs_rm(study)
    out = {"ties": int((df["consensus"] == "tie").sum()),
           # several votes: two or more judgments of the pair (a single 0/1/2 label is one vote, not several)
           "with_votes": int((df[["votes_a", "votes_b", "votes_tie"]].fillna(0).sum(axis=1) >= 2).sum())
           if {"votes_b", "votes_tie"} <= set(df.columns) else int(df["votes_a"].notna().sum()),
           "split": int((df["consensus"] == "split").sum()),
           "unanimous": int((df["consensus"] == "unanimous").sum()),
           "by_consensus": consensus_table(df) if len(df) else [],
           "dimensions": sorted(str(d) for d in df["dimension"].dropna().unique())}
    return out
