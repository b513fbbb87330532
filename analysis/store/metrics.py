"""Reads for fitting (pairs with rewards, features) and writes/reads of fits, imprint, coefficients,
pair_metrics; summary reads (including the robustness tables, printed generically)."""

from __future__ import annotations

import json
import uuid
from typing import Any, Sequence

import pandas as pd

from analysis.errors import RmtuiError
from analysis.store.core import Study, conform, first_row, insert_frame, now
from analysis.store import scores
from analysis.store.filters import GAMMA_NONE
from analysis.store.pairs import CONSENSUS_SQL

PAIR_METRIC_COLUMNS = [
    "pair_id", "fit_id", "reward_chosen_pre", "reward_rejected_pre", "reward_chosen_post",
    "reward_rejected_post", "margin_pre", "margin_post", "agree_pre", "agree_post", "tie_pre", "tie_post",
    "regime", "gamma", "theta", "same_target_labels", "near_identical", "labeler_sides_with_rm", "confusing",
    "theta_centered", "suspect_score",
]
_PM_TYPES = {
    "agree_pre": "INTEGER", "agree_post": "INTEGER", "tie_pre": "BOOLEAN", "tie_post": "BOOLEAN",
    "same_target_labels": "BOOLEAN", "near_identical": "BOOLEAN", "labeler_sides_with_rm": "BOOLEAN",
    "confusing": "BOOLEAN", "regime": "VARCHAR", "gamma": "VARCHAR", "pair_id": "VARCHAR",
    "fit_id": "VARCHAR",
}
IMPRINT_COLUMNS = ["fit_id", "target", "feature", "estimate", "se", "ci_low", "ci_high", "p", "p_bonferroni",
                   "p_bh", "n", "se_type", "vif", "r2", "feature_sd", "estimate_per_sd", "ci_low_per_sd",
                   "ci_high_per_sd"]
COEF_COLUMNS = ["fit_id", "analysis", "target", "term", "estimate", "se", "ci_low", "ci_high", "p",
                "p_bonferroni", "p_bh", "n", "se_type", "r2"]


def _table_exists(study: Study, name: str) -> bool:
    return bool(study.scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema='main' AND table_name = ?", [name]))


# -- models ---------------------------------------------------------------------------------------
def models_frame(study: Study) -> pd.DataFrame:
    """model_id, name, role, created_at of every RM, as registered (the fit takes the last pre/post)."""
    return scores.models_frame(study, "registered")[["model_id", "name", "role", "created_at"]]


def resolve_models(study: Study, pre: str | None = None, post: str | None = None) -> tuple[str | None, str | None]:
    """The pre-D and post-D model ids: the given ids (checked) or the latest model with role pre/post."""
    models = models_frame(study)
    ids = set(models["model_id"])

    def pick(given: str | None, role: str) -> str | None:
        if given is not None:
            if given in ids:
                return given
            by_name = models[models["name"] == given]
            if len(by_name):
                return str(by_name["model_id"].iloc[-1])
            known = ", ".join(sorted(ids)) or "none (score the study first: rmtui score)"
            raise RmtuiError(f"{study.path}: no model {given!r} for --{role}; models in the study: {known}",
                             "Unknown model")
        m = models[models["role"] == role]
        return None if m.empty else str(m["model_id"].iloc[-1])

    return pick(pre, "pre"), pick(post, "post")


# -- pairs with rewards ------------------------------------------------------------------------------
def pair_frame(study: Study, pre_id: str | None, post_id: str | None) -> pd.DataFrame:
    """One row per pair: ids, subset/split/heldout/identical, responses, text ids and the four rewards
    (NULL where a model is missing or has not scored the text)."""
    return study.df(
        """
        SELECT p.pair_id, p.subset, p.split, p.heldout, coalesce(p.identical, false) AS identical,
               p.chosen_text_id, p.rejected_text_id, p.chosen_response, p.rejected_response,
               sc1.reward AS reward_chosen_pre, sr1.reward AS reward_rejected_pre,
               sc2.reward AS reward_chosen_post, sr2.reward AS reward_rejected_post
        FROM pairs p
        LEFT JOIN scores sc1 ON sc1.model_id = ? AND sc1.text_id = p.chosen_text_id
        LEFT JOIN scores sr1 ON sr1.model_id = ? AND sr1.text_id = p.rejected_text_id
        LEFT JOIN scores sc2 ON sc2.model_id = ? AND sc2.text_id = p.chosen_text_id
        LEFT JOIN scores sr2 ON sr2.model_id = ? AND sr2.text_id = p.rejected_text_id
        ORDER BY p.pair_id
        """,
        [pre_id, pre_id, post_id, post_id],
    )


def model_pair_rewards(study: Study) -> pd.DataFrame:
    """Long: one row per (model, pair) with both rewards (NULL when unscored), for per-RM agreement."""
    return study.df(
        """
        SELECT m.model_id, m.name, m.role, p.pair_id, p.subset, p.split, p.heldout,
               coalesce(p.identical, false) AS identical, coalesce(p.human_tie, false) AS human_tie,
               sc.reward AS reward_chosen, sr.reward AS reward_rejected
        FROM models m CROSS JOIN pairs p
        LEFT JOIN scores sc ON sc.model_id = m.model_id AND sc.text_id = p.chosen_text_id
        LEFT JOIN scores sr ON sr.model_id = m.model_id AND sr.text_id = p.rejected_text_id
        ORDER BY m.created_at NULLS FIRST, m.model_id, p.pair_id
        """
    )


# -- features -----------------------------------------------------------------------------------------
def defs_with_values(study: Study, featurizers: Sequence[str] | None = None) -> pd.DataFrame:
    """The features that have values (what a fit can use): their feature_defs rows, plus
    ``feature`` = 'featurizer.name'; a feature with values but no definition has NULL kind/role.
    (``store.features.feature_defs`` is the table as written, values or not.)"""
    df = study.df(
        """
        SELECT d.featurizer, d.name, d.kind, d.role, d.proxy, d.featurizer || '.' || d.name AS feature
        FROM feature_defs d
        WHERE EXISTS (SELECT 1 FROM features f WHERE f.featurizer = d.featurizer AND f.name = d.name)
        ORDER BY d.featurizer, d.name
        """
    )
    # features with values but no definition still count (kind/role unknown)
    extra = study.df(
        """
        SELECT DISTINCT f.featurizer, f.name, NULL AS kind, NULL AS role, NULL AS proxy,
               f.featurizer || '.' || f.name AS feature
        FROM features f ANTI JOIN feature_defs d ON d.featurizer = f.featurizer AND d.name = f.name
        ORDER BY 1, 2
        """
    )
    if len(extra):
        df = pd.concat([df, extra], ignore_index=True)
    if featurizers:
        df = df[df["featurizer"].isin(list(featurizers))]
    return df.reset_index(drop=True)


def feature_wide(study: Study, features: Sequence[str]) -> pd.DataFrame:
    """Wide values indexed by text_id, one column per 'featurizer.name' (texts of the study's pairs)."""
    feats = list(features)
    if not feats:
        return pd.DataFrame(index=pd.Index([], name="text_id"))
    from analysis.store.features import split_feature_key

    # the study's own (featurizer, name) pairs name each key exactly; a split is the fallback
    known = {f"{a}.{b}": (a, b) for a, b in study.con.cursor().execute(
        "SELECT DISTINCT featurizer, name FROM features").fetchall()}
    parts = [known.get(f) or split_feature_key(f) for f in feats]
    sel = []
    params: list[Any] = []
    for f, (fz, name) in zip(feats, parts):
        sel.append(f'max(value) FILTER (WHERE featurizer = ? AND name = ?) AS "{f.replace(chr(34), "")}"')
        params += [fz, name]
    pairs_fz = sorted({fz for fz, _ in parts if fz is not None})
    params += pairs_fz
    df = study.df(
        f"SELECT text_id, {', '.join(sel)} FROM features "
        f"WHERE featurizer IN ({', '.join('?' for _ in pairs_fz)}) GROUP BY text_id",
        params,
    )
    df = df.set_index("text_id")
    df.columns = feats
    return df


# -- writes ---------------------------------------------------------------------------------------------
def new_fit_id() -> str:
    return now().strftime("fit-%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]


def write_fit(study: Study, *, fit_id: str, kind: str, options: dict, pre_model_id: str | None,
              post_model_id: str | None, se_type: str, n: int, messages: list[str],
              imprint: pd.DataFrame, coefficients: pd.DataFrame, pair_metrics: pd.DataFrame) -> None:
    """One transaction: the fits row, its imprint and coefficient rows, and pair_metrics (replaced:
    pair_metrics always holds the latest fit)."""
    imp = conform(imprint, IMPRINT_COLUMNS, fit_id=fit_id)
    coef = conform(coefficients, COEF_COLUMNS, fit_id=fit_id)
    pm = conform(pair_metrics, PAIR_METRIC_COLUMNS, fit_id=fit_id)
    # nullable pandas dtypes -> object with None so DuckDB sees NULLs
    for c in pm.columns:
        if str(pm[c].dtype) in ("Int64", "boolean"):
            pm[c] = pm[c].astype(object).where(pm[c].notna(), None)
    pm_select = ", ".join(
        f'CAST("{c}" AS {_PM_TYPES.get(c, "DOUBLE")}) AS "{c}"' for c in PAIR_METRIC_COLUMNS)
    with study.transaction() as cur:
        cur.execute(
            "INSERT INTO fits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [fit_id, kind, now(), json.dumps(options, sort_keys=True, default=str), pre_model_id,
             post_model_id, se_type, int(n), json.dumps(messages)],
        )
        insert_frame(cur, "imprint", imp, IMPRINT_COLUMNS)
        insert_frame(cur, "coefficients", coef, COEF_COLUMNS)
        cur.execute("DELETE FROM pair_metrics")
        insert_frame(cur, "pair_metrics", pm, PAIR_METRIC_COLUMNS, select=pm_select)


STATS_TABLES = ("agreement_stats", "regime_stats", "paired_tests", "baselines", "labeler_agreement")


def write_fit_stats(study: Study, fit_id: str, tables: dict[str, pd.DataFrame]) -> None:
    """The fit's agreement_stats, regime_stats, paired_tests and baselines rows (one transaction)."""
    with study.transaction() as cur:
        for name in STATS_TABLES:
            df = tables.get(name)
            cur.execute(f"DELETE FROM {name} WHERE fit_id = ?", [fit_id])
            if df is None or not len(df):
                continue
            cols = [r[0] for r in cur.execute(f"DESCRIBE {name}").fetchall()]
            out = conform(df, cols, fit_id=fit_id)
            for c in out.columns:
                if out[c].dtype == object:
                    out[c] = out[c].where(out[c].notna(), None)
            insert_frame(cur, name, out, cols)


def read_fit_stats(study: Study, fit_id: str) -> dict[str, pd.DataFrame]:
    out = {}
    for name in STATS_TABLES:
        if _table_exists(study, name):
            out[name] = study.df(f"SELECT * FROM {name} WHERE fit_id = ?", [fit_id])
    return out


# -- reads for the summary ------------------------------------------------------------------------------
def latest_fit(study: Study) -> dict | None:
    """The latest fit of kind 'fit' (what ``rmtui summary`` reports), options and messages parsed."""
    df = study.df("SELECT * FROM fits WHERE kind = 'fit' ORDER BY created_at DESC, fit_id DESC LIMIT 1")
    if df.empty:
        return None
    row = df.iloc[0].to_dict()
    for k in ("options", "messages"):
        try:
            row[k] = json.loads(row[k]) if row[k] else ({} if k == "options" else [])
        except (TypeError, ValueError):
            pass
    row["created_at"] = str(row["created_at"])
    return row


def fit_ids_by_time(study: Study) -> list[str]:
    """Every fit id (fits and robustness fits), oldest first."""
    return study.df("SELECT fit_id FROM fits ORDER BY created_at")["fit_id"].tolist()


def n_score_runs_after(study: Study, t) -> int:
    """Scoring runs that scored something and finished after ``t`` (a fit's created_at)."""
    return int(study.scalar("SELECT count(*) FROM score_runs WHERE finished_at > ? AND n_scored > 0", [t]))


def read_imprint(study: Study, fit_id: str) -> pd.DataFrame:
    return study.df("SELECT * FROM imprint WHERE fit_id = ? ORDER BY target, feature", [fit_id])


def read_coefficients(study: Study, fit_id: str) -> pd.DataFrame:
    return study.df("SELECT * FROM coefficients WHERE fit_id = ? ORDER BY analysis, target", [fit_id])


# -- what the app shows of the fit ------------------------------------------------------------------
def latest_imprint_fit(study: Study) -> dict | None:
    """The latest fit that has imprint rows (the app's imprint screen shows it), as stored."""
    cur = study.cursor()
    try:
        res = cur.execute("SELECT * FROM fits WHERE fit_id IN (SELECT DISTINCT fit_id FROM imprint) "
                          "ORDER BY created_at DESC, fit_id DESC LIMIT 1")
        row = first_row(res)
        return dict(zip([d[0] for d in res.description], row)) if row else None
    finally:
        cur.close()


def imprint_table(study: Study, fit_id: str | None = None) -> pd.DataFrame:
    """The imprint rows of a fit (latest by default), intercept left out; with feature role and proxy."""
    if fit_id is None:
        fit = latest_imprint_fit(study)
        if fit is None:
            return pd.DataFrame(columns=["target", "feature", "estimate", "se", "ci_low", "ci_high", "p",
                                         "p_bonferroni", "n", "se_type", "r2", "role", "proxy"])
        fit_id = fit["fit_id"]
    return study.df(
        "SELECT i.target, i.feature, i.estimate, i.se, i.ci_low, i.ci_high, i.p, i.p_bonferroni, i.n, "
        "i.se_type, i.r2, i.feature_sd, i.estimate_per_sd, i.ci_low_per_sd, i.ci_high_per_sd, d.role, d.proxy "
        "FROM imprint i "
        "LEFT JOIN feature_defs d ON (d.featurizer || '.' || d.name) = i.feature OR "
        "   (d.name = i.feature AND position('.' IN i.feature) = 0) "
        "WHERE i.fit_id = ? AND lower(i.feature) NOT IN ('(intercept)', 'intercept', 'const', '_cons') "
        "ORDER BY i.target, i.feature", [fit_id])


def regime_table(study: Study, by: str | None = None) -> pd.DataFrame:
    """Pairs per regime, overall or by ``gamma`` / ``subset`` / ``split``: long frame [group, regime, n]."""
    group = {"gamma": f"coalesce(m.gamma, '{GAMMA_NONE}')", "subset": "p.subset", "split": "p.split", None: "'all'"}[by]
    return study.df(
        f"SELECT {group} AS grp, coalesce(m.regime, 'unscored') AS regime, count(*) AS n "
        "FROM pairs p LEFT JOIN pair_metrics m ON m.pair_id = p.pair_id "
        "WHERE NOT coalesce(p.human_tie, FALSE) GROUP BY ALL ORDER BY 1, 2")  # human ties: no winner, no regime


def agreement(study: Study) -> dict:
    """Agreement of the pre-D and post-D RMs with the human labels, as stored in pair_metrics, with the
    one convention of the study (analysis/metrics/agreement.py): ``pre``/``post`` = agree / decided
    (ties and unscored pairs left out, counted in ``ties_*``), ``mis_pre``/``mis_post`` = 1 - agreement.
    ``pre_decided``/``post_decided`` are the same numbers (kept for callers of the old two-number form).
    ``human_ties`` / ``split_votes``: pairs the annotators called a tie (no regime) or split on."""
    row = first_row(study.con.cursor().execute(
        "SELECT count(*), avg(agree_pre::DOUBLE), avg(agree_post::DOUBLE), count(*) FILTER (WHERE tie_pre), "
        "count(*) FILTER (WHERE tie_post), count(agree_pre), count(agree_post) FROM pair_metrics"))
    pre, post = row[1], row[2]
    n_pre, n_post, ties_pre, ties_post = int(row[5]), int(row[6]), int(row[3]), int(row[4])
    stored = _fit_agreement(study)  # the fit's agreement_stats (slice all): the number the summary prints
    if "pre" in stored:
        pre, n_pre, ties_pre = stored["pre"]
    if "post" in stored:
        post, n_post, ties_post = stored["post"]
    return {"n": int(row[0]), "pre": pre, "post": post, "ties_pre": ties_pre, "ties_post": ties_post,
            "n_pre": n_pre, "n_post": n_post, "pre_decided": pre, "post_decided": post,
            "mis_pre": None if pre is None else 1 - pre, "mis_post": None if post is None else 1 - post,
            "human_ties": int(study.scalar("SELECT count(*) FROM pairs WHERE human_tie")),
            "split_votes": int(study.scalar(f"SELECT count(*) FROM pairs p WHERE ({CONSENSUS_SQL}) = 'split'"))}


def _fit_agreement(study: Study) -> dict[str, tuple]:
    """{role: (agreement, decided, RM ties)} from the latest fit's agreement_stats (slice all) for the
    fit's pre-D and post-D models; {} when there is no fit or it predates the stored table."""
    if not _table_exists(study, "agreement_stats"):
        return {}
    df = study.df(
        "SELECT a.role, a.agreement, a.decided, a.tie FROM agreement_stats a "
        "JOIN (SELECT fit_id, pre_model_id, post_model_id FROM fits WHERE kind = 'fit' "
        "      ORDER BY created_at DESC, fit_id DESC LIMIT 1) f ON f.fit_id = a.fit_id "
        "WHERE a.slice = 'all' AND ((a.role = 'pre' AND a.model_id = f.pre_model_id) "
        "   OR (a.role = 'post' AND a.model_id = f.post_model_id))")
    return {str(r.role): (None if pd.isna(r.agreement) else float(r.agreement), int(r.decided), int(r.tie))
            for r in df.itertuples()}


def misalignment_table(study: Study, by: str | None = None) -> dict[str, dict]:
    """Post-D misalignment per group (the regimes screen's mis% column): disagree / decided by the post-D
    RM, ties counted beside it. {group: {decided, misaligned, tie, misalignment}}."""
    group = {"gamma": f"coalesce(m.gamma, '{GAMMA_NONE}')", "subset": "p.subset", "split": "p.split", None: "'all'"}[by]
    df = study.df(
        f"SELECT {group} AS grp, count(m.agree_post) AS decided, count(*) FILTER (WHERE m.agree_post = 0) AS misaligned, "
        "count(*) FILTER (WHERE m.tie_post) AS tie "
        "FROM pairs p LEFT JOIN pair_metrics m ON m.pair_id = p.pair_id GROUP BY ALL ORDER BY 1")
    return {str(r.grp): {"decided": int(r.decided), "misaligned": int(r.misaligned), "tie": int(r.tie),
                         "misalignment": (r.misaligned / r.decided) if r.decided else None}
            for r in df.itertuples()}


def read_pair_metrics(study: Study) -> pd.DataFrame:
    """pair_metrics joined with the pair's subset, split, heldout, identical flag and the two responses
    (the length baselines read them)."""
    return study.df(
        """
        SELECT m.*, p.subset, p.split, p.heldout, coalesce(p.identical, false) AS identical,
               p.chosen_response, p.rejected_response
        FROM pair_metrics m JOIN pairs p USING (pair_id) ORDER BY pair_id
        """
    )


def datasets(study: Study) -> list[str]:
    return [str(x) for x in study.df("SELECT DISTINCT dataset FROM pairs WHERE dataset IS NOT NULL ORDER BY 1")["dataset"]]


def suspects(study: Study, limit: int = 50) -> pd.DataFrame:
    """The pairs most suspected of a label error (pair_metrics.suspect_score, highest first)."""
    return study.df(
        "SELECT m.pair_id, p.subset, p.split, p.heldout, m.margin_pre, m.margin_post, m.gamma, m.regime, "
        "m.suspect_score, p.chosen_response, p.rejected_response FROM pair_metrics m JOIN pairs p USING (pair_id) "
        "WHERE m.suspect_score IS NOT NULL ORDER BY m.suspect_score DESC, m.pair_id LIMIT ?", [int(limit)])


def n_pair_metrics(study: Study) -> int:
    return int(study.scalar("SELECT count(*) FROM pair_metrics"))


ROBUSTNESS_TABLES = ("robustness", "robustness_sensitivity", "sensitivity", "perturbation_sensitivity")


def read_robustness(study: Study) -> dict[str, pd.DataFrame]:
    """Rows of the robustness tables that exist and are not empty: ``robustness`` (the LPM) and any
    per-perturbation sensitivity table (a table whose name contains 'sensitivity', or starts with
    'robustness_'). Printed generically by the summary."""
    names = [r for r in study.df(
        "SELECT table_name FROM information_schema.tables WHERE table_schema='main' ORDER BY 1"
    )["table_name"]]
    wanted = [n for n in names if n == "robustness" or n.startswith("robustness_") or "sensitivity" in n]
    out: dict[str, pd.DataFrame] = {}
    for n in wanted:
        df = study.df(f'SELECT * FROM "{n}"')
        if len(df):
            out[n] = df
    return out


FIT_WARNING_COLUMNS = ["fit_id", "analysis", "target", "term", "category", "message", "n"]


def write_fit_warnings(study: Study, fit_id: str, rows: pd.DataFrame) -> None:
    """The numpy/statsmodels warnings a fit met (``fit_warnings``), one row per analysis, model and term."""
    if rows is None or not len(rows):
        return
    with study.transaction() as cur:
        insert_frame(cur, "fit_warnings", conform(rows, FIT_WARNING_COLUMNS, fit_id=fit_id), FIT_WARNING_COLUMNS)


def fit_warnings(study: Study, fit_id: str) -> pd.DataFrame:
    return study.df(f"SELECT {', '.join(FIT_WARNING_COLUMNS)} FROM fit_warnings WHERE fit_id = ? "
                    "ORDER BY analysis, target, term", [fit_id])
