"""``file:<path>``: import labels computed elsewhere (CSV or JSONL, ``.gz`` ok).

Rows are keyed by ``text_id``; or by ``pair_id`` + ``side`` (chosen|rejected); or, in the SEAL paper's
taxonomy layout, by ``row_id`` (or ``index``) + ``preference`` (chosen|rejected). In the paper layout
the row id is the 0-based row of the source dataset; rmtui numbers rows from 1, so it is matched to
the pair with ``source_row = row_id + 1`` of the study's single source (``source=`` picks one when the
study holds several). Every other column is a feature; see docs/features.md for the value rules.
Errors name file, line and column; rows whose key the study does not hold are counted, not imported.
"""

from __future__ import annotations

import ast
import csv
import gzip
import hashlib
import io
import json
import re
from pathlib import Path

import pandas as pd

from analysis.errors import InputError, RmtuiError
from analysis.store import features as store
from analysis.features.base import FeatureDef, Featurizer

#: the paper's long column names -> rmtui's short keys
PAPER_ALIASES = {
    "last_response_is_helpful": "helpful", "last_response_is_harmless": "harmless",
    "last_response_is_honest": "honest", "last_response_is_refusal": "refusal",
    "last_response_is_coherent": "coherent", "last_response_is_eloquent": "eloquent",
    "last_response_is_creative": "creative", "last_response_is_anthropomorphic": "anthropomorphic",
    "last_response_sentiment": "sentiment", "last_response_contains_insult": "insult",
    "last_response_is_sexually_explicit": "sexually_explicit", "last_response_breaks_privacy": "privacy",
    "last_response_is_discriminatory": "discriminatory", "last_response_is_manipulative": "manipulative",
    "last_response_is_discriminating_against": "discrimination_targets",
    "assistant_is_anthropomorphic": "assistant_anthropomorphic", "assistant_is_coherent": "assistant_coherent",
    "human_vocabulary_quality": "human_vocabulary_quality", "topics": "topics",
}
IGNORED = {"text", "context", "response", "prompt", "chosen", "rejected", "transcript"}
TARGETS = ("helpful", "harmless")
_SENT = {"negative": -1.0, "neutral": 0.0, "positive": 1.0}


def _slug(s) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(s).lower()).strip("_")


def _open_text(path: Path) -> str:
    raw = gzip.open(path, "rb").read() if path.name.endswith(".gz") else path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: invalid UTF-8 at byte {e.start}", "Label file") from e


class FileFeaturizer(Featurizer):
    cheap = True
    offline = False          # cannot label new texts (rewrites)
    chunk_size = 5000

    def __init__(self, path: str, *, study=None, source: str | None = None, name: str | None = None,
                 targets=TARGETS) -> None:
        if study is None:
            raise RmtuiError("file: labels are matched to a study's texts; open a study first", "Label file")
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: label file not found", "Label file")
        stem = self.path.name
        for ext in (".gz", ".csv", ".jsonl", ".json", ".tsv"):
            if stem.endswith(ext):
                stem = stem[: -len(ext)]
        self.name = name or f"file:{stem}"
        self.targets = set(targets or ())
        self.version = hashlib.blake2b(self.path.read_bytes(), digest_size=6).hexdigest()
        self.stats = {"rows": 0, "imported_rows": 0, "unknown_keys": 0, "duplicates": 0, "key": ""}
        rows = self._read()
        self.values, self._defs = self._resolve(rows, study, source)

    # -- reading ---------------------------------------------------------------------------------
    def _read(self) -> list[tuple[int, dict]]:
        text = _open_text(self.path)
        low = self.path.name.lower().removesuffix(".gz")
        rows: list[tuple[int, dict]] = []
        if low.endswith((".jsonl", ".json")):
            for lineno, line in enumerate(io.StringIO(text), start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as e:
                    raise InputError(f"{self.path}:{lineno}: malformed JSON: {e}", "Label file") from e
                if not isinstance(obj, dict):
                    raise InputError(f"{self.path}:{lineno}: expected a JSON object", "Label file")
                rows.append((lineno, obj))
        elif low.endswith((".csv", ".tsv")):
            reader = csv.DictReader(io.StringIO(text), delimiter="\t" if low.endswith(".tsv") else ",")
            if not reader.fieldnames:
                raise InputError(f"{self.path}:1: no header row", "Label file")
            try:
                for row in reader:
                    if None in row:
                        raise InputError(f"{self.path}:{reader.line_num}: more fields than the header has", "Label file")
                    rows.append((reader.line_num, row))
            except csv.Error as e:
                raise InputError(f"{self.path}:{reader.line_num}: {e}", "Label file") from e
        else:
            raise InputError(f"{self.path}: unknown label file type (use .csv, .tsv or .jsonl, optionally .gz)",
                             "Label file")
        if not rows:
            raise InputError(f"{self.path}: no rows", "Label file")
        return rows

    def _parse_value(self, v, name: str, lineno: int, col: str):
        """-> None (missing), float, or a set of strings (list column)."""
        if v is None:
            return None
        if isinstance(v, bool):
            return float(v)
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, list):
            return {str(x) for x in v}
        if isinstance(v, str):
            s = v.strip()
            if s == "" or s.lower() in ("nan", "null", "none", "na"):
                return None
            if s.lower() in ("true", "false"):
                return 1.0 if s.lower() == "true" else 0.0
            if s.lower() in _SENT and name == "sentiment":
                return _SENT[s.lower()]
            if s.startswith("["):
                try:
                    lst = json.loads(s)
                except ValueError:
                    try:
                        lst = ast.literal_eval(s)
                    except (ValueError, SyntaxError):
                        lst = None
                if isinstance(lst, list):
                    return {str(x) for x in lst}
            try:
                return float(s)
            except ValueError:
                pass
        raise InputError(f"{self.path}:{lineno}: column {col!r}: cannot read {str(v)[:60]!r} as a number, "
                         "true/false or a list", "Label file")

    def _resolve(self, rows, study, source):
        cols = set(rows[0][1])
        for _, r in rows:
            cols |= set(r)
        if "text_id" in cols:
            mode, keycols = "text_id", {"text_id"}
        elif {"pair_id", "side"} <= cols:
            mode, keycols = "pair", {"pair_id", "side"}
        elif ("row_id" in cols or "index" in cols) and "preference" in cols:
            mode = "paper"
            keycols = {"row_id" if "row_id" in cols else "index", "preference"}
        else:
            raise InputError(f"{self.path}: no key columns: need text_id, or pair_id and side, or row_id (or "
                             f"index) and preference; columns are {', '.join(sorted(cols))}", "Label file")
        self.stats["key"] = mode
        feat_cols = [c for c in rows[0][1] if c not in keycols and c.lower() not in IGNORED and c != ""]
        extra = sorted(cols - set(feat_cols) - keycols - {c for c in cols if c.lower() in IGNORED})
        feat_cols += [c for c in extra if c]
        if not feat_cols:
            raise InputError(f"{self.path}: no feature columns besides the key", "Label file")
        names = {c: PAPER_ALIASES.get(c, c) for c in feat_cols}
        for c, n in names.items():
            if not re.fullmatch(r"[A-Za-z_][\w:.-]*", n):
                raise InputError(f"{self.path}:1: column {c!r} is not a usable feature name", "Label file")

        # key -> text_id lookups
        if mode == "text_id":
            known = store.known_text_ids(study)
        elif mode == "pair":
            known = store.text_ids_by_pair_side(study)
        else:
            sources = store.pair_sources(study)
            if source is None:
                if len(sources) != 1:
                    raise InputError(
                        f"{self.path}: paper layout (row_id, preference) needs one source; the study holds "
                        f"{len(sources)}: {', '.join(sources[:5])}. Pass --file-source NAME.", "Label file")
                source = sources[0]
            elif source not in sources:
                raise InputError(f"{self.path}: --file-source {source!r} is not a source of this study "
                                 f"({', '.join(sources[:5])})", "Label file")
            known = store.text_ids_by_source_row(study, source)

        per_text: dict[str, dict] = {}
        list_values: dict[str, set] = {}
        for lineno, row in rows:
            self.stats["rows"] += 1
            if mode == "text_id":
                tid = str(row.get("text_id") or "").strip()
                if not tid:
                    raise InputError(f"{self.path}:{lineno}: empty text_id", "Label file")
                tid = tid if tid in known else None
            elif mode == "pair":
                side = str(row.get("side") or "").strip().lower()
                if side not in ("chosen", "rejected"):
                    raise InputError(f"{self.path}:{lineno}: column 'side' must be chosen or rejected, got {side!r}",
                                     "Label file")
                tid = known.get((str(row.get("pair_id") or "").strip(), side))
            else:
                kc = "row_id" if "row_id" in keycols else "index"
                try:
                    rid = int(float(str(row.get(kc)).strip()))
                except (TypeError, ValueError):
                    raise InputError(f"{self.path}:{lineno}: column {kc!r} must be an integer row number, got "
                                     f"{row.get(kc)!r}", "Label file") from None
                side = str(row.get("preference") or "").strip().lower()
                if side not in ("chosen", "rejected"):
                    raise InputError(f"{self.path}:{lineno}: column 'preference' must be chosen or rejected, got "
                                     f"{side!r}", "Label file")
                tid = known.get((rid + 1, side))
            vals = {}
            for c in feat_cols:
                v = self._parse_value(row.get(c), names[c], lineno, c)
                if v is None:
                    continue
                if isinstance(v, set):
                    list_values.setdefault(names[c], set()).update(v)
                vals[names[c]] = v
            if tid is None:
                self.stats["unknown_keys"] += 1
                continue
            if tid in per_text:
                self.stats["duplicates"] += 1
            per_text[tid] = vals
            self.stats["imported_rows"] += 1

        out_rows = []
        kinds: dict[str, set] = {}
        for tid, vals in per_text.items():
            for name, v in vals.items():
                if isinstance(v, set):
                    seen = {_slug(x) for x in v}
                    for lv in sorted(list_values[name]):
                        fname = f"{name}:{_slug(lv)}"
                        out_rows.append((tid, fname, 1.0 if _slug(lv) in seen else 0.0))
                        kinds.setdefault(fname, set()).add(1.0 if _slug(lv) in seen else 0.0)
                else:
                    out_rows.append((tid, name, v))
                    kinds.setdefault(name, set()).add(v)
        defs = []
        for fname in sorted(kinds):
            vs = kinds[fname]
            base = fname.split(":", 1)[0]
            if vs <= {0.0, 1.0}:
                kind = "binary"
            elif base == "sentiment" and vs <= {-1.0, 0.0, 1.0}:
                kind = "ordinal"
            else:
                kind = "continuous"
            role = "target" if base in self.targets else "spoiler"
            defs.append(FeatureDef(fname, kind, role, False, f"imported from {self.path.name} (column {base})"))
        values = pd.DataFrame(out_rows, columns=["text_id", "name", "value"])
        return values, defs

    # -- featurizer API ----------------------------------------------------------------------------
    def feature_defs(self) -> list[FeatureDef]:
        return list(self._defs)

    def config(self) -> dict:
        return {"spec": self.name, "path": str(self.path), "key": self.stats["key"]}

    def featurize(self, texts: pd.DataFrame) -> pd.DataFrame:
        return self.values[self.values["text_id"].isin(set(texts["text_id"]))].reset_index(drop=True)

    def featurize_iter(self, texts: pd.DataFrame, *, cancel=None):
        have = set(self.values["text_id"])
        texts = texts[texts["text_id"].isin(have)]
        yield from super().featurize_iter(texts, cancel=cancel)

    def report(self) -> dict:
        return dict(self.stats)
