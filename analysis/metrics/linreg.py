"""Least squares with the standard errors rmtui reports, in plain numpy.

Why not statsmodels for everything: the feature imprint is fitted on ~321,600 rows (160,800 pairs x 2
sides) for three targets at once (pre, post, shift); one QR of the design serves all three, and the
cluster-robust "meat" is a per-column ``np.bincount`` over pair codes. The numbers are the ones
statsmodels gives (``OLS(...).fit(cov_type='cluster', cov_kwds={'groups': g}, use_t=True)``,
``cov_type='HC1'`` and ``'nonrobust'``); tests check that on small data.

Standard errors
- ``iid``: classical, sigma^2 (X'X)^-1 with sigma^2 = e'e / (n - k); t with n - k df.
- ``hc1``: White's heteroskedasticity-robust sandwich times n / (n - k); t with n - k df.
- ``cluster``: sum over clusters g of (X_g' e_g)(X_g' e_g)' in the sandwich, times the small-sample
  correction G/(G-1) * (n-1)/(n-k) (statsmodels' default); t with G - 1 df.

Collinearity never crashes a fit: :func:`check_design` drops constant columns and columns that are
(numerically) linear combinations of earlier ones, in the order given, with a message for each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from analysis.metrics.significance import significance_marker  # noqa: F401  (its home before analysis.metrics.significance)

SE_TYPES = ("cluster", "iid", "hc1")
SE_LABELS = {
    "cluster": "cluster-robust by pair (CR1: G/(G-1)*(n-1)/(n-k), t with G-1 df)",
    "iid": "classical iid (as the paper's code), t with n-k df",
    "hc1": "heteroskedasticity-robust HC1, t with n-k df",
}
COLLINEAR_TOL = 1e-9


@dataclass
class OLSFit:
    names: list[str]
    params: np.ndarray          # (k, m) one column per target
    se: np.ndarray              # (k, m)
    df_inference: float
    n: int
    k: int
    r2: np.ndarray              # (m,)
    se_type: str
    n_groups: int | None = None
    centered_r2: bool = True
    cov: list[np.ndarray] = field(default_factory=list)

    def table(self, target_names: list[str], alpha: float = 0.05) -> pd.DataFrame:
        """Long table: target, term, estimate, se, t, p, ci_low, ci_high, n, r2."""
        out = []
        q = stats.t.ppf(1 - alpha / 2, self.df_inference)
        for j, tname in enumerate(target_names):
            est = self.params[:, j]
            se = self.se[:, j]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = est / se
            p = 2 * stats.t.sf(np.abs(t), self.df_inference)
            out.append(pd.DataFrame({
                "target": tname, "term": self.names, "estimate": est, "se": se, "t": t, "p": p,
                "ci_low": est - q * se, "ci_high": est + q * se, "n": self.n, "r2": self.r2[j],
            }))
        return pd.concat(out, ignore_index=True)


def blas_single_thread():
    """Run tall-skinny linear algebra on one BLAS thread. The matrices are n x ~20: threads gain little,
    and on a busy machine OpenBLAS threads spinning for cores made the 321,600-row imprint 10-20x
    slower (measured: 11-24 s with threads, 0.9 s with one). No-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _gram(X: np.ndarray, centered: bool) -> np.ndarray:
    """X'X, or the centred cross-products (X - mean)'(X - mean) (centred first: no cancellation for
    columns whose mean is large against their spread)."""
    if centered:
        Xc = X - X.mean(axis=0)
        return Xc.T @ Xc
    return X.T @ X


def check_design(X: np.ndarray, names: list[str], *, intercept: bool, what: str = "feature",
                 tol: float = COLLINEAR_TOL, gram_out: list | None = None) -> tuple[np.ndarray, list[str], list[str]]:
    """Drop constant and collinear columns (in order). Returns (keep_mask, kept_names, messages).

    ``X`` holds the candidate columns only (no intercept column). With ``intercept`` the columns are
    centred first, so a column constant over the sample (collinear with the intercept) is dropped.
    The test is on the Gram matrix: the share of a column's (centred) sum of squares not explained by
    the columns kept before it; below ``tol`` the column is dropped.
    """
    k = X.shape[1]
    keep = np.zeros(k, dtype=bool)
    msgs: list[str] = []
    if k == 0:
        return keep, [], msgs
    G = _gram(X, intercept)
    if gram_out is not None:
        gram_out.append(G)
    kept: list[int] = []
    for j in range(k):
        gjj = G[j, j]
        if not np.isfinite(gjj) or gjj <= 1e-12 * max(1.0, float(np.abs(X[:, j]).max(initial=0.0)) ** 2):
            msgs.append(
                f"dropped {what} {names[j]}: "
                + ("constant over the fitted rows" if intercept else "no variation (all zero)")
            )
            continue
        if kept:
            Gss = G[np.ix_(kept, kept)]
            gs = G[kept, j]
            try:
                coef = np.linalg.solve(Gss, gs)
                resid = gjj - gs @ coef
            except np.linalg.LinAlgError:  # pragma: no cover - kept columns are independent
                resid = 0.0
            if resid / gjj < tol:
                # name the columns it is a combination of (the largest weights)
                order = np.argsort(-np.abs(coef))[:3]
                partners = ", ".join(names[kept[i]] for i in order if abs(coef[i]) > 1e-8)
                msgs.append(
                    f"dropped {what} {names[j]}: collinear with {partners or 'earlier columns'}"
                    + (" and the intercept" if intercept else "")
                )
                continue
        kept.append(j)
        keep[j] = True
    return keep, [names[i] for i in kept], msgs


def ols(X: np.ndarray, Y: np.ndarray, names: list[str], *, se: str = "cluster",
        groups: np.ndarray | None = None, has_intercept: bool = True) -> OLSFit:
    """OLS of each column of ``Y`` on ``X`` (full column rank: run :func:`check_design` first).

    ``groups`` are integer cluster codes (any ints; factorized here) for ``se='cluster'``.
    """
    if se not in SE_TYPES:
        raise ValueError(f"se must be one of {SE_TYPES}, not {se!r}")
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    n, k = X.shape
    m = Y.shape[1]
    if n <= k:
        raise ValueError(f"{n} rows for {k} terms: too few to fit")
    # with an intercept, solve on centred columns (slopes unchanged, far better conditioned when a
    # column's mean is large against its spread) and map back: beta = T beta_c, cov = T cov_c T'
    T = None
    Xw = X
    if has_intercept and k > 1 and np.all(X[:, 0] == 1.0):
        mu = X[:, 1:].mean(axis=0)
        Xw = X.copy()
        Xw[:, 1:] -= mu
        T = np.eye(k)
        T[0, 1:] = -mu
    B, bread = _solve_normal(Xw, Y)
    X = Xw
    E = Y - X @ B
    ssr = (E ** 2).sum(axis=0)
    if has_intercept:
        sst = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
    else:
        sst = (Y ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(sst > 0, 1 - ssr / sst, np.nan)
    covs: list[np.ndarray] = []
    n_groups = None
    if se == "iid":
        df = n - k
        for j in range(m):
            covs.append(bread * (ssr[j] / df))
    elif se == "hc1":
        df = n - k
        for j in range(m):
            S = X * E[:, j:j + 1]
            covs.append(bread @ (S.T @ S) @ bread * (n / (n - k)))
    else:
        if groups is None:
            raise ValueError("se='cluster' needs groups")
        codes, uniq = pd.factorize(np.asarray(groups), sort=False)
        G = len(uniq)
        n_groups = G
        if G < 2:
            raise ValueError("cluster-robust SEs need at least 2 clusters")
        df = G - 1
        corr = (G / (G - 1)) * ((n - 1) / (n - k))
        # group sums of the scores X_i e_i for every target at once: a sparse (G x n) indicator product
        from scipy import sparse

        P = sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(G, n))
        S_all = np.hstack([X * E[:, j:j + 1] for j in range(m)])
        Sg_all = np.asarray(P @ S_all)
        for j in range(m):
            Sg = Sg_all[:, j * k:(j + 1) * k]
            covs.append(bread @ (Sg.T @ Sg) @ bread * corr)
    if T is not None:
        B = T @ B
        covs = [T @ c @ T.T for c in covs]
    SE = np.column_stack([np.sqrt(np.clip(np.diag(c), 0, None)) for c in covs])
    return OLSFit(names=list(names), params=B, se=SE, df_inference=float(df), n=n, k=k, r2=r2,
                  se_type=se, n_groups=n_groups, centered_r2=has_intercept, cov=covs)


def _solve_normal(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares by the (column-scaled) normal equations with one step of iterative refinement,
    and (X'X)^-1. A tall QR costs ~1 s at 321,600 x 21 on these CPUs; this costs ~0.05 s. The design
    has passed :func:`check_design`, so X'X is well enough conditioned; refinement restores the
    accuracy lost to squaring the condition number. Falls back to lstsq/pinv if Cholesky fails."""
    from scipy.linalg import cho_factor, cho_solve

    XtX = X.T @ X
    d = np.sqrt(np.diag(XtX))
    d[d == 0] = 1.0
    A = XtX / np.outer(d, d)
    try:
        c = cho_factor(A, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        B = np.linalg.lstsq(X, Y, rcond=None)[0]
        return B, np.linalg.pinv(XtX)

    def solve(rhs: np.ndarray) -> np.ndarray:
        return cho_solve(c, rhs / d[:, None], check_finite=False) / d[:, None]

    B = solve(X.T @ Y)
    B = B + solve(X.T @ (Y - X @ B))
    bread = cho_solve(c, np.eye(len(d)), check_finite=False) / np.outer(d, d)
    return B, bread


def vif(X: np.ndarray, *, centered: bool = True, gram: np.ndarray | None = None) -> np.ndarray:
    """Variance inflation factor of each column of ``X`` (no intercept column in ``X``).

    Centered (a model with an intercept): 1 / (1 - R_j^2) of column j on the others plus a constant,
    the diagonal of the inverse correlation matrix. Uncentered (no intercept): the same on raw
    cross-products.
    """
    k = X.shape[1]
    if k == 0:
        return np.array([])
    if k == 1:
        return np.array([1.0])
    G = _gram(X, centered) if gram is None else gram
    d = np.sqrt(np.diag(G))
    C = G / np.outer(d, d)
    try:
        return np.diag(np.linalg.inv(C)).copy()
    except np.linalg.LinAlgError:  # pragma: no cover
        return np.full(k, np.inf)


def adjust_p(p: np.ndarray | pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Bonferroni and Benjamini-Hochberg adjusted p-values (NaN stays NaN, not counted)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, dtype=float)
    bonf = np.full_like(p, np.nan)
    bh = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        bonf[ok] = multipletests(p[ok], method="bonferroni")[1]
        bh[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return bonf, bh


def add_adjusted_p(tab: pd.DataFrame, *groups: pd.Series) -> pd.DataFrame:
    """Fill ``p_bonferroni`` and ``p_bh`` of ``tab``, adjusting each boolean row mask in ``groups``
    as one family (:func:`adjust_p`); rows in no group get NaN. Returns ``tab``."""
    tab["p_bonferroni"] = np.nan
    tab["p_bh"] = np.nan
    for m in groups:
        b, h = adjust_p(tab.loc[m, "p"].to_numpy())
        tab.loc[m, "p_bonferroni"] = b
        tab.loc[m, "p_bh"] = h
    return tab


COEF_COLUMNS = ["target", "term", "estimate", "se", "ci_low", "ci_high", "p", "p_bonferroni", "p_bh",
                "n", "se_type", "r2"]


def regress(df: pd.DataFrame, y: str, xcols: list[str], *, se: str = "hc1", groups: str | None = None,
            intercept: bool = True, alpha: float = 0.05, what: str = "regression",
            target: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """OLS of ``df[y]`` on ``df[xcols]`` with rows missing any of them left out; returns a
    coefficients table (COEF_COLUMNS, term 'const' for the intercept) and messages. Never raises on
    a singular design or too few rows: returns an empty table and says why."""
    with blas_single_thread():
        return _regress(df, y, xcols, se=se, groups=groups, intercept=intercept, alpha=alpha, what=what,
                        target=target)


def _regress(df, y, xcols, *, se, groups, intercept, alpha, what, target):
    msgs: list[str] = []
    cols = [y] + xcols + ([groups] if groups else [])
    d = df[cols]
    ok = d[[y] + xcols].notna().all(axis=1)
    if (~ok).sum():
        msgs.append(f"{what}: {int((~ok).sum()):,} of {len(d):,} rows left out for missing values")
    d = d[ok]
    empty = pd.DataFrame(columns=COEF_COLUMNS)
    Xf = d[xcols].to_numpy(float)
    keep, kept, dm = check_design(Xf, xcols, intercept=intercept, what="term")
    msgs += [f"{what}: {m}" for m in dm]
    X = Xf[:, keep]
    names = kept
    if intercept:
        X = np.column_stack([np.ones(len(X)), X])
        names = ["const"] + kept
    if len(d) <= X.shape[1] + 1 or X.shape[1] == 0:
        msgs.append(f"{what}: {len(d)} usable rows for {X.shape[1]} terms: not fitted")
        return empty, msgs
    fit = ols(X, d[y].to_numpy(float), names, se=se,
              groups=d[groups].to_numpy() if groups else None, has_intercept=intercept)
    tab = fit.table([target or y], alpha=alpha)
    add_adjusted_p(tab, tab["term"] != "const")
    tab["se_type"] = se
    msgs.append(f"{what}: n = {fit.n:,}, SE {SE_LABELS[se]}")
    return tab[COEF_COLUMNS].reset_index(drop=True), msgs
