"""Feature imprint: how strongly each RM rewards each feature (SEAL section 3, metric 4).

One row per (pair, side): the reward r(t) of the text regressed on its features x_k(t), chosen and
rejected rows pooled, ``r = b0 + sum_k b_k x_k + e``, for the pre-D reward, the post-D reward and the
shift (post - pre). A text shared by two pairs gives two rows (one per pair and side), each in its
own pair's cluster.

Standard errors are clustered by pair by default (the two sides of a pair share a context, so their
errors are not independent; the paper's code meant to cluster but fitted iid). ``se='iid'`` gives
the paper's numbers. p-values are adjusted over the features of one target with Bonferroni and
Benjamini-Hochberg.

``pair_fe=True`` estimates within pairs (pair fixed effects). With exactly two rows per pair,
demeaning within the pair is the same as regressing the chosen-minus-rejected difference of the
reward on the chosen-minus-rejected differences of the features, without an intercept: that is what
is fitted (identical point estimates; one row per pair, so cluster-by-pair SEs are HC1 there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scipy import stats

from analysis.metrics.linreg import SE_LABELS, add_adjusted_p, blas_single_thread, check_design, ols, vif

DEFAULT_TARGETS = ("pre", "post", "shift")
BINARY_KINDS = {"binary", "bool", "boolean", "indicator", "flag"}
CONTINUOUS_KINDS = {"continuous", "count", "real", "numeric", "float", "int", "integer", "length"}
VIF_WARN = 10.0
PER_SD_COLUMNS = ["feature_sd", "estimate_per_sd", "ci_low_per_sd", "ci_high_per_sd"]
WALD_COLUMNS = ["target", "term", "estimate", "p", "df_num", "df_den", "n", "se_type"]


def default_wald_groups(features: list[str]) -> dict[str, list[str]]:
    """The length measures (features whose name starts with ``len_``, e.g. len_tokens and len_words,
    VIF ~ 124 together) as one group when two or more are fitted."""
    lens = [f for f in features if f.rpartition(".")[2].startswith("len_")]
    return {"length": lens} if len(lens) >= 2 else {}


def joint_wald(fit, names: list[str], targets: list[str], groups: dict[str, list[str]]) -> pd.DataFrame:
    """Joint Wald F test that every coefficient of a group is 0, per target, with the fit's own
    (clustered / robust) covariance: F = b' V^-1 b / q on (q, df_inference) degrees of freedom.
    ``estimate`` holds F; ``term`` names the group and its features."""
    rows = []
    for gname, feats in groups.items():
        idx = [names.index(f) for f in feats if f in names]
        if len(idx) < 2:
            continue
        for j, t in enumerate(targets):
            b = fit.params[idx, j]
            V = fit.cov[j][np.ix_(idx, idx)] if fit.cov else None
            if V is None:
                continue
            try:
                W = float(b @ np.linalg.solve(V, b))
            except np.linalg.LinAlgError:
                continue
            q = len(idx)
            F = W / q
            rows.append({"target": t, "term": f"{gname}: " + " + ".join(names[i] for i in idx), "estimate": F,
                         "p": float(stats.f.sf(F, q, fit.df_inference)), "df_num": q,
                         "df_den": float(fit.df_inference), "n": fit.n, "se_type": fit.se_type})
    return pd.DataFrame(rows, columns=WALD_COLUMNS)
IMPRINT_COLUMNS = ["target", "feature", "estimate", "se", "ci_low", "ci_high", "p", "p_bonferroni",
                   "p_bh", "n", "se_type", "vif", "r2"]


@dataclass
class ImprintResult:
    table: pd.DataFrame                      # IMPRINT_COLUMNS (plus t, n_pairs)
    intercepts: pd.DataFrame                 # target, estimate, se, p (empty with pair_fe)
    messages: list[str] = field(default_factory=list)
    n: int = 0                               # rows fitted (texts; pairs with pair_fe)
    n_pairs: int = 0
    features: list[str] = field(default_factory=list)   # used
    dropped: list[str] = field(default_factory=list)
    standardized: list[str] = field(default_factory=list)
    se_type: str = "cluster"
    pair_fe: bool = False
    wald: pd.DataFrame = field(default_factory=pd.DataFrame)   # joint tests of feature groups

    @property
    def units(self) -> str:
        if not self.standardized:
            return "raw feature units (reward per unit of the feature)"
        return ("reward per standard deviation for " + ", ".join(self.standardized)
                + "; raw units for the others")


def should_standardize(values: pd.Series, kind: str | None) -> bool:
    """Continuous/count features are z-scored; binary ones never; unknown kinds when > 2 values."""
    k = (kind or "").lower()
    if k in BINARY_KINDS:
        return False
    if k in CONTINUOUS_KINDS:
        return True
    if k == "ordinal":
        return False
    return values.nunique(dropna=True) > 2


def imprint(rows: pd.DataFrame, features: list[str], targets: tuple[str, ...] | list[str] = DEFAULT_TARGETS,
            **kwargs) -> ImprintResult:
    """Fit the imprint of ``features`` on each target column of ``rows`` (see :func:`_imprint`)."""
    with blas_single_thread():
        return _imprint(rows, features, targets, **kwargs)


def _imprint(rows: pd.DataFrame, features: list[str], targets: tuple[str, ...] | list[str] = DEFAULT_TARGETS,
            *, se: str = "cluster", pair_fe: bool = False, standardize: bool = False,
            kinds: dict[str, str] | None = None, alpha: float = 0.05,
            group_col: str = "pair_id", side_col: str = "side",
            wald_groups: dict[str, list[str]] | None = None) -> ImprintResult:
    """Fit the imprint of ``features`` on each target column of ``rows``.

    ``rows``: one row per (pair, side) with ``group_col``, ``side_col`` ('chosen'/'rejected'),
    the target columns and the feature columns. Rows missing a target or a feature are left out
    (counted in the messages). Never raises on singular designs: offending features are dropped.
    """
    msgs: list[str] = []
    targets = [t for t in targets if t in rows.columns]
    res = ImprintResult(table=pd.DataFrame(columns=IMPRINT_COLUMNS), intercepts=pd.DataFrame(),
                        se_type=se, pair_fe=pair_fe)
    if not targets:
        res.messages.append("imprint: no reward targets to fit")
        return res
    missing = [f for f in features if f not in rows.columns]
    if missing:
        msgs.append("imprint: features not found, left out: " + ", ".join(missing))
    features = [f for f in features if f in rows.columns]
    if not features:
        res.messages = msgs + ["imprint: no features to fit"]
        return res
    data = rows[[group_col, side_col] + targets + features]
    complete = data[targets + features].notna().all(axis=1).to_numpy()
    n_drop = int((~complete).sum())
    if n_drop:
        msgs.append(f"imprint: {n_drop:,} of {len(data):,} rows left out for a missing reward or feature")
    data = data.loc[complete]
    raw_sd = {f: float(data[f].std(ddof=1)) if len(data) > 1 else float("nan") for f in features}

    std_cols: list[str] = []
    if standardize:
        data = data.copy()
        for f in features:
            if should_standardize(data[f], (kinds or {}).get(f)):
                sd = data[f].std(ddof=1)
                if sd and np.isfinite(sd) and sd > 0:
                    data[f] = (data[f] - data[f].mean()) / sd
                    std_cols.append(f)
        msgs.append("imprint: standardized (z-scored over the fitted rows): "
                    + (", ".join(std_cols) if std_cols else "none (all binary/ordinal)")
                    + "; rewards stay in raw units")
    res.standardized = std_cols

    if pair_fe:
        side = data[side_col].to_numpy()
        c = data[side == "chosen"].drop_duplicates(group_col).set_index(group_col)
        r = data[side == "rejected"].drop_duplicates(group_col).set_index(group_col)
        both = c.index.intersection(r.index)
        lost = data[group_col].nunique() - len(both)
        if lost:
            msgs.append(f"imprint (pair FE): {lost:,} pairs without both sides left out")
        d = c.loc[both, targets + features].to_numpy(float) - r.loc[both, targets + features].to_numpy(float)
        Y = d[:, :len(targets)]
        Xf = d[:, len(targets):]
        groups = np.arange(len(both))
        intercept = False
        msgs.append("imprint: pair fixed effects (within-pair): chosen-minus-rejected differences, "
                    "no intercept; one row per pair")
        n_pairs = len(both)
    else:
        Y = data[targets].to_numpy(float)
        Xf = data[features].to_numpy(float)
        groups = data[group_col].to_numpy()
        intercept = True
        n_pairs = int(pd.unique(groups).size)
    res.n_pairs = n_pairs

    gram: list = []
    keep, kept, dmsgs = check_design(Xf, features, intercept=intercept, gram_out=gram)
    msgs += ["imprint: " + m for m in dmsgs]
    res.dropped = [f for f, k in zip(features, keep) if not k]
    res.features = kept
    Xk = Xf[:, keep]
    if intercept:
        X = np.column_stack([np.ones(len(Xk)), Xk])
        names = ["(intercept)"] + kept
    else:
        X = Xk
        names = kept
    if not kept:
        res.messages = msgs + ["imprint: no features left to fit"]
        return res
    if X.shape[0] <= X.shape[1] + 1:
        res.messages = msgs + [f"imprint: {X.shape[0]} rows for {X.shape[1]} terms: too few to fit"]
        return res
    fit = ols(X, Y, names, se=se, groups=groups, has_intercept=intercept)
    res.n = fit.n
    tab = fit.table(targets, alpha=alpha)
    v = vif(Xk, centered=intercept, gram=gram[0][np.ix_(keep, keep)])
    vmap = dict(zip(kept, v))
    for f, val in vmap.items():
        if val > VIF_WARN:
            msgs.append(f"imprint: VIF of {f} is {val:.1f} (> {VIF_WARN:g}): its estimate shares "
                        "variance with other features; read it with care")
    feats = tab[tab["term"] != "(intercept)"].copy()
    res.intercepts = tab[tab["term"] == "(intercept)"][["target", "estimate", "se", "p"]].reset_index(drop=True)
    feats = feats.rename(columns={"term": "feature"})
    add_adjusted_p(feats, *(feats["target"] == t for t in targets))
    feats["se_type"] = se
    feats["vif"] = feats["feature"].map(vmap)
    feats["n"] = fit.n
    feats["n_pairs"] = n_pairs
    # per-SD estimates (a display option): reward per standard deviation of the feature over the fitted
    # rows; features already z-scored keep their estimate
    sd = feats["feature"].map(lambda f: 1.0 if f in std_cols else raw_sd.get(f, float("nan")))
    feats["feature_sd"] = feats["feature"].map(raw_sd)
    for a, b in (("estimate", "estimate_per_sd"), ("ci_low", "ci_low_per_sd"), ("ci_high", "ci_high_per_sd")):
        feats[b] = feats[a] * sd
    res.table = feats[IMPRINT_COLUMNS + ["t", "n_pairs"] + PER_SD_COLUMNS].reset_index(drop=True)
    res.wald = joint_wald(fit, names, targets, wald_groups if wald_groups is not None else default_wald_groups(kept))
    for r in res.wald.itertuples():
        msgs.append(f"imprint: joint Wald test of {r.term} on {r.target}: F({r.df_num}, {r.df_den:.0f}) = "
                    f"{r.estimate:.3g}, p = {r.p:.3g}")
    msgs.append(f"imprint: SE {SE_LABELS[se]}"
                + ("; R^2 uncentered (no intercept)" if not intercept else ""))
    res.messages = msgs
    return res
