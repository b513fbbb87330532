"""Firth's penalised-likelihood logistic regression, and detecting when a logit needs it.

Under (quasi-)separation (some combination of regressors predicts the outcome perfectly, e.g. every pair
with a feature has the same outcome) the logit's maximum likelihood estimate does not exist: the
optimiser walks towards infinity and the reported estimate, standard error and p-value are artefacts.
Firth (1993) maximises the log-likelihood plus 1/2 log det I(beta) (the Jeffreys prior), which always
has a finite maximum; Heinze & Schemper (2002) recommend it for separation, with p-values from the
penalised likelihood ratio test (each term constrained to 0, the penalty kept on the full model's
information matrix, as R's logistf does).

Known case (used in the tests): with one binary regressor and an intercept, Firth's slope is the log
odds ratio of the 2x2 table with 1/2 added to every cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIRTH_SE_TYPE = "Firth penalised ML (p: penalised LR test; CI: Wald)"


@dataclass
class FirthFit:
    beta: np.ndarray
    cov: np.ndarray            # inverse Fisher information at beta
    loglik: float              # penalised log-likelihood
    converged: bool
    iterations: int


def _penalised(X: np.ndarray, y: np.ndarray, beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    eta = X @ beta
    p = 1.0 / (1.0 + np.exp(-eta))
    w = np.clip(p * (1 - p), 1e-300, None)
    info = X.T @ (X * w[:, None])
    sign, logdet = np.linalg.slogdet(info)
    ll = float(np.sum(y * -np.logaddexp(0, -eta) + (1 - y) * -np.logaddexp(0, eta)))
    return ll + 0.5 * logdet if sign > 0 else -np.inf, p, w, info


def firth_logit(X: np.ndarray, y: np.ndarray, *, fixed: int | None = None, maxiter: int = 200,
                tol: float = 1e-8, max_step: float = 5.0) -> FirthFit:
    """Maximise the penalised log-likelihood by Newton steps with the hat-matrix adjusted score
    U*_j = sum_i (y_i - p_i + h_i (1/2 - p_i)) x_ij, halving a step that lowers it. ``fixed``: the index
    of a coefficient held at 0 (for the penalised LR test); the penalty stays that of the full X."""
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    k = X.shape[1]
    free = np.ones(k, bool)
    if fixed is not None:
        free[fixed] = False
    beta = np.zeros(k)
    ll, p, w, info = _penalised(X, y, beta)
    converged = False
    it = 0
    for it in range(1, maxiter + 1):
        try:
            inv = np.linalg.inv(info)
        except np.linalg.LinAlgError:
            break
        h = np.einsum("ij,jk,ik->i", X, inv, X) * w
        score = X.T @ (y - p + h * (0.5 - p))
        step = np.zeros(k)
        step[free] = np.linalg.solve(info[np.ix_(free, free)], score[free])
        big = np.max(np.abs(step))
        if big > max_step:
            step *= max_step / big
        for _ in range(30):
            new = beta + step
            ll_new, p_new, w_new, info_new = _penalised(X, y, new)
            if ll_new >= ll - 1e-12:
                break
            step /= 2
        else:
            break
        beta, ll, p, w, info = new, ll_new, p_new, w_new, info_new
        if np.max(np.abs(step)) < tol:
            converged = True
            break
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov = np.full((k, k), np.nan)
    return FirthFit(beta, cov, float(ll), converged, it)


def firth_lrt_p(X: np.ndarray, y: np.ndarray, full: FirthFit, j: int) -> tuple[float, bool]:
    """(p, converged): penalised likelihood ratio test of beta_j = 0 (chi-square, 1 df)."""
    from scipy.stats import chi2

    r = firth_logit(X, y, fixed=j)
    stat = max(2.0 * (full.loglik - r.loglik), 0.0)
    return float(chi2.sf(stat, 1)), r.converged


def separated_terms(X: np.ndarray, y: np.ndarray, names: list[str]) -> list[str]:
    """Terms (columns of X, no intercept) that alone (quasi-)separate the outcome: a two-valued column
    (a 0/1 feature) one of whose values holds a single outcome, or a column whose values split the outcomes (max over y = 0 below min over y = 1, or the reverse). Each of
    these makes the logit's MLE infinite (quasi-separation by one regressor); separation by a
    combination is caught by the fit itself (non-convergence, fitted probabilities at 0 or 1)."""
    out = []
    y = np.asarray(y, float)
    for j, name in enumerate(names):
        x = np.asarray(X[:, j], float)
        if np.nanmin(x) == np.nanmax(x):
            continue
        hit = False
        two_valued = np.unique(x[~np.isnan(x)]).size == 2  # then one end with one outcome separates
        for end in ((np.nanmax(x), np.nanmin(x)) if two_valued else ()):
            at = x == end
            if 0 < at.sum() < len(x) and np.unique(y[at]).size == 1:
                hit = True
        y0, y1 = x[y == 0], x[y == 1]
        if len(y0) and len(y1) and (y0.max() <= y1.min() or y1.max() <= y0.min()):
            hit = True
        if hit:
            out.append(name)
    return out
