"""Precomputed results shipped beside a dataset (the demo's ``sample_data/demo-results``): reward
scores keyed by ``(model_id, text_id)`` and feature values keyed by ``(featurizer, version, config,
text_id)``, in Parquet files whose sha256 a ``manifest.json`` records.

They are never taken on trust. A consumer (scoring, featurizing) first recomputes a seeded sample of
the texts it would take from here (:func:`verify_sample`, :data:`VERIFY_N` texts) and takes the rest
only when every recomputed value matches within the tolerance; one mismatch, a missing value or a
file whose sha256 differs from the manifest and it computes everything itself. What it took and how
it was checked is recorded with its run (``score_runs.settings``, the ``steps`` summary) and said.

Make them from a built study: ``python -m analysis.store.precomputed build --study S --out DIR``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.errors import RmtuiError
from analysis.hashing import digest

MANIFEST = "manifest.json"
SCORES = "scores.parquet"
FEATURES = "features.parquet"
SIMILARITIES = "similarities.parquet"
FORMAT = 1
VERIFY_N = 24           # texts recomputed before anything is taken
SCORE_TOL = 1e-3        # |reward difference| accepted (fp32 CPUs agree to ~1e-6 on these models)
FEATURE_TOL = 1e-4      # |feature value difference| accepted (binary features must be equal)
SIMILARITY_TOL = 1e-4   # |cosine difference| accepted for a rewrite's meaning similarity


def pair_key(original: str, rewrite: str) -> str:
    """The key of a (original response, rewritten response) similarity."""
    return digest("similarity", original or "", rewrite or "", size=10)


def config_key(config: dict) -> str:
    """A featurizer's recorded config as one short key (the same JSON the featurizers table holds)."""
    return digest("featurizer-config", json.dumps(config, sort_keys=True, default=str), size=8)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_sample(text_ids, n: int = VERIFY_N) -> list[str]:
    """``n`` of ``text_ids``, the same ones on every machine and in every order (by a hash of each id)."""
    ids = sorted(set(map(str, text_ids)), key=lambda t: digest("verify", t, size=8))
    return ids[:max(0, int(n))]


@dataclass
class Check:
    """How the precomputed values of one model or featurizer were checked in this process."""
    what: str
    ok: bool
    n_checked: int
    max_abs_diff: float | None
    reason: str = ""
    n_taken: int = 0

    def record(self, source: str) -> dict:
        return {"source": source, "what": self.what, "verified": self.ok, "n_checked": self.n_checked,
                "max_abs_diff": self.max_abs_diff, "n_taken": self.n_taken, "reason": self.reason or None}

    def line(self, source: str) -> str:
        if self.ok:
            return (f"{self.n_taken:,} values of {self.what} taken from {source} after {self.n_checked} recomputed "
                    f"texts matched (max |difference| {self.max_abs_diff:.1e})")
        return f"precomputed values of {self.what} in {source} not used: {self.reason}; computed here instead"


@dataclass
class Precomputed:
    folder: Path
    manifest: dict
    problem: str | None = None              # set: nothing here is used (says why)
    checks: dict[str, Check] = field(default_factory=dict)
    _scores: pd.DataFrame | None = None
    _features: pd.DataFrame | None = None
    _similarities: pd.DataFrame | None = None

    @property
    def source(self) -> str:
        return self.folder.name

    @classmethod
    def load(cls, folder: str | Path) -> "Precomputed":
        """Read the manifest; a missing or altered file leaves ``problem`` set (then nothing is used)."""
        folder = Path(folder)
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            return cls(folder, {}, problem=f"{folder / MANIFEST}: unreadable ({type(e).__name__})")
        if manifest.get("format") != FORMAT:
            return cls(folder, manifest, problem=f"{folder / MANIFEST}: format {manifest.get('format')!r}, "
                                                 f"this rmtui reads {FORMAT}")
        for name, meta in (manifest.get("files") or {}).items():
            p = folder / name
            if not p.is_file() or _sha256(p) != meta.get("sha256"):
                return cls(folder, manifest, problem=f"{p}: missing or its sha256 differs from the manifest")
        return cls(folder, manifest)

    def _table(self, name: str) -> pd.DataFrame | None:
        if self.problem or name not in (self.manifest.get("files") or {}):
            return None
        return pd.read_parquet(self.folder / name)

    def scores(self, model_id: str, text_ids) -> pd.DataFrame:
        """DataFrame[text_id, reward, truncated, n_tokens] of the given texts that this folder holds."""
        if self._scores is None:
            self._scores = self._table(SCORES)
            if self._scores is None:
                self._scores = pd.DataFrame(columns=["model_id", "text_id", "reward", "truncated", "n_tokens"])
        s = self._scores
        s = s[(s["model_id"] == model_id) & s["text_id"].isin(set(map(str, text_ids)))]
        return s.drop(columns=["model_id"]).reset_index(drop=True)

    def features(self, featurizer: str, version: str, config: dict, text_ids) -> pd.DataFrame:
        """Long DataFrame[text_id, name, value] of the given texts for this featurizer, version and config."""
        if self._features is None:
            self._features = self._table(FEATURES)
            if self._features is None:
                self._features = pd.DataFrame(columns=["featurizer", "version", "config_key", "text_id", "name", "value"])
        f = self._features
        f = f[(f["featurizer"] == featurizer) & (f["version"] == str(version)) & (f["config_key"] == config_key(config))
              & f["text_id"].isin(set(map(str, text_ids)))]
        return f[["text_id", "name", "value"]].reset_index(drop=True)


    def similarities(self, model: str, keys) -> pd.DataFrame:
        """DataFrame[key, similarity] of the given (original, rewrite) keys that this folder holds."""
        if self._similarities is None:
            self._similarities = self._table(SIMILARITIES)
            if self._similarities is None:
                self._similarities = pd.DataFrame(columns=["model", "key", "similarity"])
        s = self._similarities
        s = s[(s["model"] == model) & s["key"].isin(set(keys))]
        return s[["key", "similarity"]].reset_index(drop=True)


def compare(computed: pd.DataFrame, shipped: pd.DataFrame, keys: list[str], tol: float) -> tuple[bool, float | None, str]:
    """(all match, max |difference|, why not) of the value column ``reward`` or ``value`` on ``keys``."""
    col = "reward" if "reward" in computed.columns else "value"
    m = computed[keys + [col]].merge(shipped[keys + [col]], on=keys, how="outer", suffixes=("_here", "_shipped"),
                                     indicator=True)
    if (m["_merge"] != "both").any() or not len(m):
        n = int((m["_merge"] != "both").sum())
        return False, None, f"{n} recomputed values have no shipped counterpart (or the reverse)"
    a, b = m[f"{col}_here"].astype(float), m[f"{col}_shipped"].astype(float)
    both_nan = a.isna() & b.isna()
    diff = (a - b).abs().where(~both_nan, 0.0)
    if diff.isna().any():
        return False, None, "a value is missing on one side"
    worst = float(diff.max())
    if worst > tol:
        return False, worst, f"recomputed values differ by up to {worst:.3g} (tolerance {tol:g})"
    return True, worst, ""


# -- making them ---------------------------------------------------------------------------------

def build(study_path: str | Path, out: str | Path, featurizers: tuple[str, ...] = ("heuristic", "proxy"),
          similarity_model: str = "all-MiniLM-L6-v2") -> dict:
    """Write the scores of the study's models, the values of ``featurizers`` and the meaning similarities
    of its rewrites (made with ``similarity_model``) to ``out``, with a manifest."""
    from analysis.store import open_study

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open_study(study_path, read_only=True) as st:
        models = st.df("SELECT model_id, name, path_or_hub_id FROM models ORDER BY model_id")
        scores = st.df("SELECT model_id, text_id, reward, truncated, n_tokens FROM scores "
                       "WHERE model_id IN (SELECT model_id FROM models) ORDER BY model_id, text_id")
        fz = st.df("SELECT featurizer, version, config FROM featurizers ORDER BY featurizer")
        fz = fz[fz["featurizer"].isin(featurizers)]
        parts = []
        for _, r in fz.iterrows():
            v = st.df("SELECT text_id, name, value FROM features WHERE featurizer = ? ORDER BY text_id, name",
                      [r["featurizer"]])
            v.insert(0, "config_key", config_key(json.loads(r["config"] or "{}")))
            v.insert(0, "version", str(r["version"]))
            v.insert(0, "featurizer", r["featurizer"])
            parts.append(v)
        rw = st.df("SELECT p.chosen_response, p.rejected_response, r.side, r.new_response, r.similarity "
                   "FROM rewrites r JOIN pairs p USING (pair_id) ORDER BY r.rewrite_id")
    feats = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    sims = pd.DataFrame({
        "model": similarity_model,
        "key": [pair_key(c if side == "chosen" else r, n) for c, r, side, n in
                zip(rw["chosen_response"], rw["rejected_response"], rw["side"], rw["new_response"])],
        "similarity": rw["similarity"].astype(float)}).drop_duplicates("key") if len(rw) else pd.DataFrame()
    files = {}
    for name, frame in ((SCORES, scores), (FEATURES, feats), (SIMILARITIES, sims)):
        if not len(frame):
            continue
        frame.to_parquet(out / name, index=False, compression="zstd")
        files[name] = {"sha256": _sha256(out / name), "rows": int(len(frame))}
    manifest = {
        "format": FORMAT, "made_by": f"python -m analysis.store.precomputed build --study {Path(study_path).name} --out {out.name}",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": files,
        "models": {r["model_id"]: {"name": r["name"], "spec": r["path_or_hub_id"],
                                   "n_scores": int((scores["model_id"] == r["model_id"]).sum())}
                   for _, r in models.iterrows()},
        "featurizers": {r["featurizer"]: {"version": str(r["version"]),
                                          "config_key": config_key(json.loads(r["config"] or "{}"))}
                        for _, r in fz.iterrows()},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m analysis.store.precomputed")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write a study's scores and offline feature values as precomputed results")
    b.add_argument("--study", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--featurizers", default="heuristic,proxy")
    a = ap.parse_args(argv)
    try:
        m = build(a.study, a.out, tuple(x for x in a.featurizers.split(",") if x))
    except RmtuiError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in m["files"].items()}, sort_keys=True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
