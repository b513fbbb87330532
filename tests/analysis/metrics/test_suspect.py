"""Suspected label errors: the score on a hand-computed case and recovery of planted flips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.metrics.suspect import flip_labels, precision_at_k, suspect_scores


def test_score_hand_computed():
    # margins pre: 2, -2, 0 (tie), 4 -> SD over non-zero = std(2, -2, 4) = 3.055; post: 1, -1, -1, 1 -> SD 1.155
    pm = pd.DataFrame({"margin_pre": [2.0, -2.0, 0.0, 4.0], "margin_post": [1.0, -1.0, -1.0, 1.0],
                       "gamma": ["c", "r", None, "i"]})
    s = suspect_scores(pm)
    sd_pre, sd_post = np.std([2, -2, 4], ddof=1), np.std([1, -1, -1, 1], ddof=1)
    want = [-(2 / sd_pre + 1 / sd_post) / 2 - 0.5, (2 / sd_pre + 1 / sd_post) / 2 + 0.5,
            1 / sd_post, -(4 / sd_pre + 1 / sd_post) / 2]     # row 3: the pre tie contributes nothing
    assert s == pytest.approx(want)
    assert np.argmax(s) == 1


def test_planted_flips_rank_first():
    rng = np.random.default_rng(0)
    n = 1000
    # RMs agree with the true label 75 % of the time, with noise
    true_m = rng.normal(1.0, 1.0, n)
    pm = pd.DataFrame({"margin_pre": true_m + rng.normal(0, 1, n), "margin_post": true_m + rng.normal(0, 1, n),
                       "gamma": rng.choice(["c", "i", "r"], n, p=[0.6, 0.25, 0.15])})
    idx = rng.choice(n, 100, replace=False)
    flipped = flip_labels(pm, idx)
    assert (flipped.loc[idx, "margin_pre"] == -pm.loc[idx, "margin_pre"]).all()
    truth = np.zeros(n, bool)
    truth[idx] = True
    p = precision_at_k(suspect_scores(flipped), truth, [50, 100])
    assert p[50] > 0.5 and p[100] > 0.4        # random: 0.10
    assert precision_at_k(np.arange(n)[::-1], np.arange(n) < 10, [10]) == {10: 1.0}
