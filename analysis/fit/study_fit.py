"""``fit_study``: read rewards and features through the store, compute every metric, write the fit.

``summary(study)``: a JSON-able dict of what the study holds (agreement, regimes, gamma breakdowns,
imprint, theta, drivers, confusing entries, robustness), printing what exists when parts are missing.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from analysis.errors import RmtuiError
from analysis.metrics import (
    add_outcomes, agreement, compare, confusing, gamma, imprint, misalignment, misalignment_drivers,
    regime, regimes, reward_shift_theta, side_features, theta_regression, theta_summary,
)
from analysis.metrics import tables as T
from analysis.metrics.confusing import NEAR_IDENTICAL, SIMILARITY_MEASURE, same_labels
from analysis.metrics.shift import centered_theta
from analysis.metrics.suspect import suspect_scores
from analysis.metrics.linreg import SE_LABELS, SE_TYPES
from analysis.store import Study
from analysis.store import metrics as ms
from analysis.store import pairs as store_pairs
from analysis.fit.fit_warnings import (  # noqa: F401  (moved there; kept importable from here)
    FitWarnings, _human_covariates, _without_human_ties)

DEFAULT_GAMMA_NAMES = ("harmless", "helpful")
WALD_LABEL = "joint Wald F test (every coefficient = 0; estimate = F) of "


@dataclass
class FitOptions:
    features: list[str] | None = None        # 'featurizer.name' (or a bare name if unambiguous)
    featurizers: list[str] | None = None     # default: every featurizer with values in the study
    se: str = "cluster"                      # cluster | iid
    pair_fe: bool = False
    standardize: bool = False
    pre: str | None = None                   # model ids (or names); default: latest role pre/post
    post: str | None = None
    tie_tol: float = 0.0                     # |r_c - r_r| <= tie_tol is a tie
    gamma_features: list[str] | None = None  # priority order; default (harmless, helpful) targets
    near_identical: float = NEAR_IDENTICAL
    drivers: bool = True
    alpha: float = 0.05

    def __post_init__(self) -> None:
        from analysis.errors import RmtuiError

        for name, ok, want in (("tie_tol", self.tie_tol >= 0, ">= 0"),
                               ("near_identical", 0 <= self.near_identical <= 1, "in [0, 1]"),
                               ("alpha", 0 < self.alpha < 1, "in (0, 1)")):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or v != v or not ok:  # NaN compares false
                raise RmtuiError(f"{name} = {v!r}: must be {want}", "Bad fit option")


@dataclass
class FitResult:
    fit_id: str
    pre_model_id: str | None
    post_model_id: str | None
    n_pairs: int
    features: list[str]
    gamma_features: list[str]
    imprint: pd.DataFrame
    coefficients: pd.DataFrame
    pair_metrics: pd.DataFrame
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0


# -- feature selection ------------------------------------------------------------------------------
def _resolve_names(defs: pd.DataFrame, names: list[str], what: str) -> list[str]:
    out = []
    known = list(defs["feature"])
    for n in names:
        n = n.strip()
        if not n:
            continue
        if n in known:
            out.append(n)
            continue
        hits = defs[defs["name"] == n]["feature"].tolist()
        if len(hits) == 1:
            out.append(hits[0])
        elif len(hits) > 1:
            raise RmtuiError(f"{what}: feature {n!r} is ambiguous: {', '.join(hits)}; name it as featurizer.name",
                             "Ambiguous feature")
        else:
            avail = ", ".join(known) or "none (run rmtui featurize first)"
            raise RmtuiError(f"{what}: no feature {n!r} in the study; features with values: {avail}",
                             "Unknown feature")
    return list(dict.fromkeys(out))


def select_features(defs: pd.DataFrame, features: list[str] | None, featurizers: list[str] | None) -> list[str]:
    if featurizers:
        have = set(defs["featurizer"])
        missing = [f for f in featurizers if f not in have]
        if missing:
            raise RmtuiError(
                f"--featurizers: no values for {', '.join(missing)}; featurizers in the study: "
                f"{', '.join(sorted(have)) or 'none'}", "Unknown featurizer")
        defs = defs[defs["featurizer"].isin(featurizers)]
    if features:
        return _resolve_names(defs, features, "--features")
    return list(defs["feature"])


def default_gamma_features(defs: pd.DataFrame) -> list[str]:
    """(harmless, helpful) target features of one featurizer, preferring 'llm'."""
    t = defs[(defs["role"] == "target") | defs["role"].isna()]
    cands = []
    for fz, g in t.groupby("featurizer"):
        names = set(g["name"])
        if all(n in names for n in DEFAULT_GAMMA_NAMES):
            cands.append(fz)
    if not cands:
        return []
    fz = "llm" if "llm" in cands else sorted(cands)[0]
    return [f"{fz}.{n}" for n in DEFAULT_GAMMA_NAMES]


# -- pair metrics ------------------------------------------------------------------------------------
def compute_pair_metrics(pf: pd.DataFrame, wide: pd.DataFrame | None, gamma_cols: list[str], *,
                         tie_tol: float = 0.0, near: float = NEAR_IDENTICAL) -> pd.DataFrame:
    """Pure: pair frame (store.metrics.pair_frame) + wide features -> pair_metrics columns."""
    pm = add_outcomes(pf.reset_index(drop=True), tol=tie_tol)
    pm["regime"] = regime(pm["agree_pre"], pm["agree_post"], pm["tie_pre"], pm["tie_post"]).to_numpy()
    pm["theta"] = reward_shift_theta(pm["reward_chosen_pre"], pm["reward_rejected_pre"],
                                     pm["reward_chosen_post"], pm["reward_rejected_post"])
    pm["theta_centered"] = centered_theta(pm)
    if gamma_cols and wide is not None and all(c in wide.columns for c in gamma_cols):
        ch = wide.reindex(pm["chosen_text_id"].to_numpy())[gamma_cols].reset_index(drop=True)
        rj = wide.reindex(pm["rejected_text_id"].to_numpy())[gamma_cols].reset_index(drop=True)
        pm["gamma"] = gamma(ch, rj, gamma_cols).to_numpy()
        pm["same_target_labels"] = same_labels(ch, rj, gamma_cols).to_numpy()
    else:
        pm["gamma"] = None
        pm["same_target_labels"] = pd.Series(pd.NA, index=pm.index, dtype="boolean")
    pm["suspect_score"] = suspect_scores(pm)
    flags = confusing(pm, threshold=near)
    for c in flags.columns:
        pm[c] = flags[c].to_numpy()
    return pm


PROXY_CAVEAT = ("gamma from PROXY target labels (featurizer proxy: refusal phrasing / alt-profanity-check for "
                "harmless, MiniLM relevance to the request for helpful), not an LLM labeler; read the gamma "
                "tables against the proxies' own agreement with the human labels (labeler_agreement)")


def gamma_is_proxy(defs: pd.DataFrame, gcols: list[str]) -> bool:
    """True when any gamma feature is a proxy target (the offline ``proxy`` featurizer or proxy = TRUE)."""
    if not gcols or not len(defs):
        return False
    d = defs[defs["feature"].isin(gcols)]
    return bool((d["featurizer"] == "proxy").any() or d["proxy"].fillna(False).astype(bool).any())


SUMMARY_GROUPS = {"all": "all", "subset": "subset", "split": "split", "heldout": "heldout"}


def agreement_rows(study: Study, tie_tol: float = 0.0) -> list[dict]:
    """``summary['agreement']``: per RM (name, role) and group (all, subset, split, heldout), the rows of
    :func:`analysis.metrics.tables.agreement_stats` on every pair (human ties counted beside, in
    ``human_tie``, never in the denominator): the numbers the fit stores in ``agreement_stats``."""
    long = ms.model_pair_rewards(study)
    if not len(long):
        return []
    names = dict(zip(long["model_id"], long["name"]))
    tab = T.agreement_stats(long, tie_tol=tie_tol, slices=("subset", "split", "heldout"))
    out = []
    for r in records(tab):
        mid = r.pop("model_id")
        group = SUMMARY_GROUPS[r.pop("slice")]
        value = r.pop("value")
        r.pop("interval", None)
        role = r.pop("role")
        scored = r["decided"] + r["tie"]
        r.update({"scored": scored, "agreement_decided": r["agreement"],  # older keys of this dict, kept
                  "agreement_ties_as_disagree": r["agree"] / scored if scored else None,
                  "tie_share": r["tie"] / scored if scored else None})
        out.append({"model_id": mid, "name": names.get(mid), "role": role, "group": group, "value": value, **r})
    return out


def study_tables(study: Study, pm: pd.DataFrame, *, tie_tol: float = 0.0, gamma_features: list[str] | None = None,
                 gamma_proxy: bool = False) -> dict[str, pd.DataFrame]:
    """agreement_stats (every RM), regime_stats, paired_tests and baselines for the pairs of ``pm``."""
    long = ms.model_pair_rewards(study)
    if len(long):
        g = pm[["pair_id", "gamma"]] if "gamma" in pm.columns else pm[["pair_id"]]
        long = long.merge(g, on="pair_id", how="left")
    out = {"agreement_stats": T.agreement_stats(long, tie_tol=tie_tol) if len(long) else pd.DataFrame()}
    has_regimes = pm["regime"].isin(list(T.DECIDED)).any()
    out["regime_stats"] = T.regime_stats(pm) if has_regimes else pd.DataFrame()
    out["paired_tests"] = T.paired_tests(pm) if has_regimes else pd.DataFrame()
    out["baselines"] = T.baselines(pm)
    out["labeler_agreement"] = T.labeler_agreement(pm, list(gamma_features or []), gamma_proxy)
    return out


def imprint_rows(pm: pd.DataFrame, wide: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """One row per (pair, side): pair_id, side, text_id, pre, post, shift and the features."""
    parts = []
    for side in ("chosen", "rejected"):
        d = pd.DataFrame({
            "pair_id": pm["pair_id"].to_numpy(), "side": side,
            "text_id": pm[f"{side}_text_id"].to_numpy(),
            "pre": pm[f"reward_{side}_pre"].to_numpy(float),
            "post": pm[f"reward_{side}_post"].to_numpy(float),
        })
        d["shift"] = d["post"] - d["pre"]
        f = wide.reindex(d["text_id"].to_numpy())[features].reset_index(drop=True)
        parts.append(pd.concat([d, f], axis=1))
    return pd.concat(parts, ignore_index=True)


def fit_study(study: Study, options: FitOptions | None = None,
              progress: Callable[[str], None] | None = None) -> FitResult:
    """Compute agreement, regimes, gamma, theta, confusing flags, imprint, theta regression and drivers;
    write them as one fit. Parts whose inputs are missing are skipped with a message."""
    from analysis.metrics.linreg import blas_single_thread

    with blas_single_thread():
        return _fit_study(study, options, progress)


def _fit_study(study: Study, options: FitOptions | None,
               progress: Callable[[str], None] | None) -> FitResult:
    o = options or FitOptions()
    if o.se not in SE_TYPES:
        raise RmtuiError(f"--se must be one of cluster, iid (hc1 also accepted), not {o.se!r}", "Bad option")
    say = progress or (lambda s: None)
    t0 = time.perf_counter()
    msgs: list[str] = []
    warned = FitWarnings()  # numpy/statsmodels warnings: captured, one line each, stored with the fit
    pre_id, post_id = ms.resolve_models(study, o.pre, o.post)
    if pre_id is None and post_id is None:
        raise RmtuiError(f"{study.path}: no models with role pre or post; score the study first "
                         "(rmtui score ... --role pre / --role post) or name them with --pre/--post",
                         "Nothing to fit")
    if pre_id is None:
        msgs.append("no pre-D model: pre agreement, regimes, theta and the shift imprint are left out")
    if post_id is None:
        msgs.append("no post-D model: post agreement, regimes, theta and drivers are left out")
    say("reading pairs and rewards")
    pf = ms.pair_frame(study, pre_id, post_id)
    if pf.empty:
        raise RmtuiError(f"{study.path}: no pairs; ingest a dataset first", "Nothing to fit")
    pf, n_human_ties = _without_human_ties(study, pf)
    if n_human_ties:
        msgs.append(f"human ties: {n_human_ties:,} pairs the annotators called a tie are left out of agreement, "
                    "regimes, gamma and the imprint")
    defs = ms.defs_with_values(study)
    feats = select_features(defs, o.features, o.featurizers) if len(defs) else []
    if o.features and not len(defs):
        raise RmtuiError("--features: the study has no features yet (run rmtui featurize)", "Unknown feature")
    gcols = _resolve_names(defs, o.gamma_features, "--gamma-features") if o.gamma_features else default_gamma_features(defs)
    if not gcols:
        msgs.append("gamma: no target features (harmless, helpful) in the study; gamma left NULL "
                    "(name a pair with --gamma-features)")
    say("reading features")
    wide = ms.feature_wide(study, list(dict.fromkeys(feats + gcols))) if (feats or gcols) else None
    say("pair metrics")
    pm = compute_pair_metrics(pf, wide, gcols, tie_tol=o.tie_tol, near=o.near_identical)
    n_theta_nan = int(pm["theta"].isna().sum())
    if pre_id and post_id and n_theta_nan:
        msgs.append(f"theta: {n_theta_nan:,} pairs without an angle (a zero reward vector or a missing reward)")

    imp_tab = pd.DataFrame()
    coefs: list[pd.DataFrame] = []
    kinds = dict(zip(defs["feature"], defs["kind"])) if len(defs) else {}
    if feats and wide is not None:
        say("imprint")
        rows = imprint_rows(pm, wide, feats)
        targets = [t for t, ok in (("pre", pre_id), ("post", post_id), ("shift", pre_id and post_id)) if ok]
        with warned.capture("imprint", targets):
            ir = imprint(rows, feats, targets, se=o.se, pair_fe=o.pair_fe, standardize=o.standardize,
                         kinds=kinds, alpha=o.alpha)
        warned.terms_of(ir.table, "feature")
        msgs += ir.messages
        imp_tab = ir.table
        if len(ir.wald):
            wald = ir.wald.drop(columns=["df_num", "df_den"]).assign(analysis="imprint_joint_wald")
            wald["term"] = WALD_LABEL + wald["term"]  # estimate holds F, not a coefficient: say so in the row
            coefs.append(wald[["analysis", "target", "term", "estimate", "p", "n", "se_type"]])
        used = ir.features or feats
        sf = side_features(pm, wide, used)
        side_cols = list(sf.columns)
        pmx = pd.concat([pm, sf], axis=1)
        if pre_id and post_id:
            say("theta regression")
            with warned.capture("theta", ["theta"]):
                tt, m = theta_regression(pmx, side_cols)
            warned.terms_of(tt, "term")
            msgs += m
            if len(tt):
                tt.insert(0, "analysis", "theta")
                coefs.append(tt)
        if post_id and o.drivers:
            say("misalignment drivers")
            human_cols = _human_covariates(study, pmx, msgs)
            with warned.capture("misalignment_drivers", ["post"]):
                lpm, logit, m = misalignment_drivers(pmx, side_cols + human_cols, alpha=o.alpha)
            warned.terms_of(pd.concat([x for x in (lpm, logit) if len(x)], ignore_index=True)
                            if len(lpm) or len(logit) else pd.DataFrame(), "term")
            msgs += m
            if len(lpm):
                lpm.insert(0, "analysis", "misalignment_lpm")
                coefs.append(lpm)
            if len(logit):
                logit.insert(0, "analysis", "misalignment_logit")
                coefs.append(logit)
    else:
        msgs.append("no features in the study (or none selected): imprint, theta regression and drivers "
                    "left out")
    coef_tab = pd.concat(coefs, ignore_index=True) if coefs else pd.DataFrame()
    say("agreement, regimes, paired tests and baselines with intervals")
    gproxy = gamma_is_proxy(defs, gcols)
    with warned.capture("agreement_and_baselines", []):
        stats = study_tables(study, pm, tie_tol=o.tie_tol, gamma_features=gcols, gamma_proxy=gproxy)
    if gproxy and pm["gamma"].notna().any():
        msgs.append(PROXY_CAVEAT)
    msgs.append("agreement = agree / decided pairs, misalignment = 1 - agreement; ties and unscored pairs "
                "counted beside them; Wilson 95 % intervals; pre vs post: McNemar's exact test")
    n_tied = int((pm["tie_pre"].astype("boolean").fillna(False) | pm["tie_post"].astype("boolean").fillna(False)).sum())
    if n_tied:
        msgs.append(f"theta: {n_tied:,} tied pairs (either RM) left out of the theta summaries and regression")
    fit_id = ms.new_fit_id()
    opts = asdict(o)
    opts.update({"features_resolved": feats, "gamma_features_resolved": gcols, "gamma_proxy": gproxy,
                 "se_label": SE_LABELS[o.se], "near_identical_measure": SIMILARITY_MEASURE,
                 "units": ("z-scored continuous/count features" if o.standardize else "raw")})
    msgs += warned.lines()
    say("writing")
    ms.write_fit(study, fit_id=fit_id, kind="fit", options=opts, pre_model_id=pre_id, post_model_id=post_id,
                 se_type=o.se, n=len(pm), messages=msgs, imprint=imp_tab, coefficients=coef_tab,
                 pair_metrics=pm)
    ms.write_fit_stats(study, fit_id, stats)
    ms.write_fit_warnings(study, fit_id, warned.frame())
    return FitResult(fit_id=fit_id, pre_model_id=pre_id, post_model_id=post_id, n_pairs=len(pm),
                     features=feats, gamma_features=gcols, imprint=imp_tab, coefficients=coef_tab,
                     pair_metrics=pm, messages=msgs, seconds=time.perf_counter() - t0)


def _clean(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(v, (pd.Timestamp,)):
        return str(v)
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def records(df: pd.DataFrame | None) -> list[dict]:
    if df is None or len(df) == 0:
        return []
    return [{str(k): _clean(v) for k, v in r.items()} for r in df.to_dict(orient="records")]


def _heldout_label(v: Any) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return "unknown"
    return "held-out" if bool(v) else "in-sample"


def _stale(study: Study, fit: dict | None, n_fit_pairs: int, n_pairs: int) -> list[str]:
    """How the study moved on since its latest fit (the regimes, imprint and theta below are the fit's)."""
    if not fit:
        return []
    fid, out = fit["fit_id"], []
    if n_fit_pairs != n_pairs:
        out.append(f"fit {fid} covers {n_fit_pairs:,} pairs; the study now has {n_pairs:,}: rerun rmtui fit")
    pre, post = ms.resolve_models(study)
    if (pre, post) != (fit.get("pre_model_id"), fit.get("post_model_id")):
        out.append(f"fit {fid} used pre {fit.get('pre_model_id')} and post {fit.get('post_model_id')}; the latest "
                   f"are {pre} and {post}: rerun rmtui fit")
    newer = ms.n_score_runs_after(study, fit["created_at"])
    if newer:
        out.append(f"{newer} scoring run(s) finished after fit {fid}: rerun rmtui fit")
    return out


def summary(study: Study) -> dict:
    """Everything `rmtui summary` prints, as a json.dumps-able dict. Missing parts are listed in
    ``missing`` and give empty lists. numpy/statsmodels warnings met while computing it (the
    length-only baseline on a small or separated study, say) are captured, one line each, in
    ``library_warnings`` (issue 25), never printed raw."""
    warned = FitWarnings()
    with warned.capture("summary", []):
        out = _summary(study)
    out["library_warnings"] = warned.lines()
    return out


def _summary(study: Study) -> dict:
    out: dict[str, Any] = {"study": str(study.path), "missing": [], "stale": []}
    out["n_pairs"] = store_pairs.n_pairs(study)
    from analysis.datasets.human import human_summary
    from analysis.store.jobs import failed_runs, interrupted

    out["interrupted"] = interrupted(study)  # ingests / scoring runs a kill left unfinished
    out["incomplete_runs"] = failed_runs(study)  # scoring runs that failed (their model's scores are incomplete)
    from analysis.metrics.truncation import truncation_warnings
    from analysis.store.scores import truncation

    out["truncation"] = records(truncation(study))  # texts each RM cut at its maximum length
    out["truncation_warnings"] = truncation_warnings(out["truncation"])
    out["human"] = human_summary(study)
    n_human_ties = out["human"]["ties"]
    out["datasets"] = ms.datasets(study)
    models = ms.models_frame(study)
    out["models"] = records(models[["model_id", "name", "role"]])
    fit = ms.latest_fit(study)
    out["fit"] = _clean(fit) if fit else None
    opts = (fit or {}).get("options") or {}
    tol = float(opts.get("tie_tol", 0.0) or 0.0)
    out["tie_tol"] = tol

    # agreement per RM (every model of the study), overall and per subset / split / held-out: the same
    # function (analysis.metrics.tables.agreement_stats) the fit stores, so every consumer reads one number
    agr_rows = []
    if len(models) and out["n_pairs"]:
        agr_rows = agreement_rows(study, tol)
    else:
        out["missing"].append("agreement: no models scored yet (rmtui score)")
    out["agreement"] = agr_rows

    # pair metrics: from the latest fit, or computed now (nothing written) when no fit exists
    pm = None
    if ms.n_pair_metrics(study):
        pm = ms.read_pair_metrics(study)
        out["pair_metrics_source"] = f"fit {fit['fit_id']}" if fit else "pair_metrics table"
        out["stale"] = _stale(study, fit, len(pm), out["n_pairs"] - n_human_ties)
    else:
        pre_id, post_id = ms.resolve_models(study)
        if (pre_id or post_id) and out["n_pairs"]:
            pf, _ = _without_human_ties(study, ms.pair_frame(study, pre_id, post_id))
            defs = ms.defs_with_values(study)
            gcols = default_gamma_features(defs) if len(defs) else []
            wide = ms.feature_wide(study, gcols) if gcols else None
            pm = compute_pair_metrics(pf, wide, gcols, tie_tol=tol)
            out["pair_metrics_source"] = "computed now (no fit yet; run rmtui fit to store it)"
            out["missing"].append("fit: none yet (regimes computed now; imprint, theta regression and "
                                  "drivers need rmtui fit)")
    if pm is not None and len(pm):
        has_pre = pm["agree_pre"].notna().any() or pm["tie_pre"].fillna(False).astype(bool).any()
        has_post = pm["agree_post"].notna().any() or pm["tie_post"].fillna(False).astype(bool).any()
        out["regimes"] = records(regimes(pm))
        out["regimes_by_subset"] = records(regimes(pm, by="subset"))
        has_gamma = pm["gamma"].notna().any()
        out["regimes_by_gamma"] = records(regimes(pm, by="gamma")) if has_gamma else []
        out["misalignment_by_gamma"] = records(misalignment(pm, by="gamma")) if has_gamma and has_post else []
        out["misalignment_by_subset"] = records(misalignment(pm, by="subset")) if has_post else []
        out["misalignment"] = records(misalignment(pm))[0] if has_post else None
        if not has_gamma:
            out["missing"].append("gamma: no target labels (harmless, helpful) yet")
        tp = pm["tie_pre"].astype("boolean").fillna(False).to_numpy(bool)
        tq = pm["tie_post"].astype("boolean").fillna(False).to_numpy(bool)
        out["ties"] = {"pre": int(tp.sum()), "post": int(tq.sum()), "both": int((tp & tq).sum()),
                       "pre_only": int((tp & ~tq).sum()), "post_only": int((~tp & tq).sum()),
                       "identical_pairs": int(pm["identical"].fillna(False).astype(bool).sum())}
        if has_pre and has_post:
            out["theta_by_regime"] = records(theta_summary(pm, by="regime"))
            out["theta_by_gamma"] = records(theta_summary(pm, by="gamma")) if has_gamma else []
            out["theta"] = records(theta_summary(pm))[0]
            if "theta_centered" in pm.columns and pm["theta_centered"].notna().any():
                out["theta_centered"] = records(theta_summary(pm, col="theta_centered"))[0]
        else:
            out["theta_by_regime"] = out["theta_by_gamma"] = []
            out["missing"].append("theta: needs both a pre-D and a post-D model")
        flags = {}
        for c in ("same_target_labels", "near_identical", "labeler_sides_with_rm", "confusing"):
            col = pm[c].astype("boolean")
            flags[c] = int(col.fillna(False).sum())
            flags[c + "_unknown"] = int(col.isna().sum())
        flags["identical"] = int(pm["identical"].fillna(False).astype(bool).sum())
        flags["near_identical_measure"] = f"{SIMILARITY_MEASURE} >= {opts.get('near_identical', NEAR_IDENTICAL)}"
        out["confusing"] = flags
    else:
        for k in ("regimes", "regimes_by_subset", "regimes_by_gamma", "misalignment_by_gamma",
                  "misalignment_by_subset", "theta_by_regime", "theta_by_gamma"):
            out[k] = []
        out["confusing"] = {}
        out["ties"] = {}
        out["misalignment"] = None
        out["missing"].append("regimes: no pre-D/post-D rewards yet")

    # regressions of the latest fit
    if fit:
        imp = ms.read_imprint(study, fit["fit_id"])
        out["imprint"] = records(imp)
        coef = ms.read_coefficients(study, fit["fit_id"])
        out["coefficients"] = {a: records(g) for a, g in coef.groupby("analysis", sort=True)} if len(coef) else {}
        if imp.empty:
            out["missing"].append("imprint: the latest fit has none (no features selected or present)")
        out["se_type"] = fit.get("se_type")
        out["se_label"] = opts.get("se_label")
        out["units"] = opts.get("units")
        out["pair_fe"] = bool(opts.get("pair_fe", False))
    else:
        out["imprint"] = []
        out["coefficients"] = {}
    # stored intervals, paired tests and baselines (the fit's; computed now when there is no fit)
    stats: dict[str, pd.DataFrame] = {}
    if fit:
        stats = ms.read_fit_stats(study, fit["fit_id"])
    elif pm is not None and len(pm):
        defs_now = ms.defs_with_values(study)
        g_now = default_gamma_features(defs_now) if len(defs_now) else []
        stats = study_tables(study, pm, tie_tol=tol, gamma_features=g_now, gamma_proxy=gamma_is_proxy(defs_now, g_now))
    gfeats = opts.get("gamma_features_resolved") if fit else None
    out["gamma_source"] = {"features": gfeats, "proxy": bool(opts.get("gamma_proxy")) if fit else None,
                           "caveat": PROXY_CAVEAT if fit and opts.get("gamma_proxy") else None}
    for name in ms.STATS_TABLES:
        df = stats.get(name)
        out[name] = records(df.drop(columns=["fit_id"], errors="ignore")) if df is not None else []
    out["length_beats_rm"] = T.length_beats_rm(out["agreement_stats"], out["baselines"])
    if fit and not out["agreement_stats"]:
        out["missing"].append("agreement_stats: the latest fit predates the stored intervals; rerun rmtui fit")

    from analysis.rewrite.experiment import robustness_stale

    out["stale"] = list(out.get("stale") or []) + robustness_stale(study)
    rob = ms.read_robustness(study)
    out["robustness"] = {}
    for name, df in rob.items():
        if "fit_id" in df.columns and df["fit_id"].nunique() > 1:
            # the latest robustness fit: the fit_id last in fits by created_at, else the last rows
            order = ms.fit_ids_by_time(study)
            present = [f for f in order if f in set(df["fit_id"])]
            last = present[-1] if present else df["fit_id"].iloc[-1]
            df = df[df["fit_id"] == last]
        out["robustness"][name] = records(df)
    return _clean(out)
