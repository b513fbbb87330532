"""Preference datasets in the shapes they were published in, turned into chosen/rejected pairs.

Shapes (all declared with ``--map``; see docs/datasets.md):

- **A/B with a label**: ``a=COL,b=COL,label=COL`` (+ ``--label a=1,b=2,tie=0``). The winner becomes
  ``chosen``; a tie is stored with ``chosen = a, rejected = b`` and ``human_tie = TRUE``.
- **several annotators**: ``label=ann1,ann2,ann3`` or a label column holding a list: the majority wins,
  no majority is a tie; ``votes_a / votes_b / votes_tie / annotator_agreement`` are stored.
- **scores**: ``score_a=COL,score_b=COL``: the higher wins, equal is a tie, ``human_margin`` is the
  difference (with a label, the label decides and the scores give the margin).
- **rated or ranked lists**: ``completions=COL`` (a list of dicts or strings) with ``rating=KEY`` /
  ``ratings=COL`` (higher better) or ``rank=KEY`` / ``ranks=COL`` / ``rank=@position`` (lower better),
  expanded by ``--pairs best-worst|all|adjacent``; each pair keeps its row and its two item indices.
- **two preference dimensions**: ``label:better=COL,label:safer=COL``: one pair per dimension, in
  subsets ``<subset>:better`` and ``<subset>:safer`` (and ``pairs.dimension``).
- **per-response attributes**: ``attr.NAME.a=COL,attr.NAME.b=COL`` (or ``.chosen/.rejected``, or
  ``attr.NAME=KEY`` inside list items), ``role.NAME=target|spoiler``: stored as features of the texts
  under a featurizer named after the dataset (``featurizer=NAME`` to choose it).

Nothing here runs SQL or touches the study; :func:`row_pairs` is called by the readers in
:mod:`analysis.datasets.readers` for every record.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from analysis.errors import InputError


def assignments(items: Iterable[Any], flag: str, expected: str) -> Iterable[tuple[str, str, str]]:
    """(part, key, value) of every ``key=value`` in comma-separated option values (``--map``,
    ``--label``), stripped; an item without ``=`` is an InputError naming the flag and the form."""
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise InputError(f"{flag} {part!r}: expected {expected}", "Bad option")
            k, v = (x.strip() for x in part.split("=", 1))
            yield part, k, v

PAIR_RULES = ("best-worst", "all", "adjacent")
CLASSES = ("a", "b", "tie")

# the default meaning of label values (compared case-insensitively, whitespace trimmed)
DEFAULT_LABELS: dict[str, tuple[str, ...]] = {
    "a": ("a", "model_a", "response_a", "1"),
    "b": ("b", "model_b", "response_b", "2"),
    "tie": ("tie", "tie (bothbad)", "tie(bothbad)", "both_bad", "draw"),
}
_NUMERIC_RE = re.compile(r"^[+-]?\d+(\.\d+)?$")

PLAIN_KEYS = {"prompt", "chosen", "rejected", "subset", "split"}
SHAPE_KEYS = {"a", "b", "label", "score_a", "score_b", "margin", "completions", "text", "rating", "ratings",
              "rank", "ranks", "featurizer"}
_LIST_KEYS = ("label", "prompt")  # keys whose value may continue after a comma: label=x,y,z


class RowError(Exception):
    """One record cannot be read (kind as in :class:`analysis.datasets.readers.Issue`)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def norm_label(v: Any) -> str:
    """A label value as compared: ``1.0`` -> ``1``, ``+1`` -> ``1``, ``True`` -> ``true``, case folded."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v).strip().lower()
    if _NUMERIC_RE.match(s):
        f = float(s)
        s = str(int(f)) if f.is_integer() else repr(f)
    return s


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


@dataclass
class LabelSpec:
    """What label values mean: class -> raw values."""

    values: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_LABELS))
    explicit: bool = False

    def lookup(self) -> dict[str, str]:
        out = {}
        for cls, vals in self.values.items():
            for v in vals:
                out[norm_label(v)] = cls
        return out

    def describe(self) -> str:
        return ",".join(f"{c}={'|'.join(v)}" for c, v in self.values.items())


def parse_label_spec(text: str | Iterable[str] | None) -> LabelSpec:
    """``"a=1,b=2,tie=0|tie (bothbad)"`` -> LabelSpec. Classes: a, b, tie."""
    if not text:
        return LabelSpec()
    items = [text] if isinstance(text, str) else list(text)
    values: dict[str, list[str]] = {}
    for part, k, v in assignments(items, "--label", "CLASS=VALUE, e.g. a=1,b=2,tie=0"):
        k = {"A": "a", "B": "b", "model_a": "a", "model_b": "b"}.get(k, k).lower()
        if k not in CLASSES:
            raise InputError(f"--label {part!r}: {k!r} is not one of a, b, tie", "Bad option")
        vals = [x.strip() for x in v.split("|") if x.strip()]
        if not vals:
            raise InputError(f"--label {part!r}: no value for {k!r}", "Bad option")
        values.setdefault(k, []).extend(vals)
    if "a" not in values or "b" not in values:
        raise InputError("--label: name the values of both a and b (e.g. a=-1,b=1)", "Bad option")
    seen: dict[str, str] = {}
    for cls, vals in values.items():
        for v in vals:
            n = norm_label(v)
            if n in seen and seen[n] != cls:
                raise InputError(f"--label: value {v!r} is given for both {seen[n]} and {cls}", "Bad option")
            seen[n] = cls
    return LabelSpec({k: tuple(v) for k, v in values.items()}, explicit=True)


@dataclass
class Attr:
    name: str
    a: str | None = None       # column of side a (or chosen)
    b: str | None = None
    item: str | None = None    # key inside a completion of a list
    sides: str = "ab"          # "ab": a/b columns, "cr": chosen/rejected columns
    role: str = "target"


@dataclass
class Shape:
    """A declared dataset shape (from ``--map`` / ``--label`` / ``--pairs`` or a preset)."""

    prompt: list[str] = field(default_factory=list)
    chosen: str | None = None
    rejected: str | None = None
    a: str | None = None
    b: str | None = None
    labels: dict[str | None, list[str]] = field(default_factory=dict)  # dimension -> label columns
    score_a: str | None = None
    score_b: str | None = None
    margin: str | None = None           # a column whose absolute value is the human margin
    completions: str | None = None
    text: str | None = None
    rating: str | None = None           # key in each item
    ratings: str | None = None          # parallel list column
    rank: str | None = None             # key in each item, or "@position"
    ranks: str | None = None
    subset: str | None = None
    split: str | None = None
    attrs: list[Attr] = field(default_factory=list)
    featurizer: str | None = None
    label_spec: LabelSpec = field(default_factory=LabelSpec)
    pairs_rule: str = "best-worst"
    preset: str | None = None
    # label values seen while scanning (column -> value -> records), filled by observe()
    _seen: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)
    _lookup: dict[str, str] | None = field(default=None, repr=False)

    # -- what kind ----------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        if self.completions:
            return "list"
        if self.a or self.b:
            return "ab"
        return "plain"

    def __str__(self) -> str:  # recorded in ingests.options
        d = {k: v for k, v in self.to_dict().items() if v not in (None, [], {}, "")}
        return repr(d)

    def to_dict(self) -> dict:
        return {"preset": self.preset, "prompt": self.prompt, "a": self.a, "b": self.b,
                "chosen": self.chosen, "rejected": self.rejected,
                "labels": {str(k): v for k, v in self.labels.items()}, "score_a": self.score_a,
                "score_b": self.score_b, "margin": self.margin, "completions": self.completions,
                "text": self.text, "rating": self.rating, "ratings": self.ratings, "rank": self.rank,
                "ranks": self.ranks, "attrs": [vars(a) for a in self.attrs], "featurizer": self.featurizer,
                "label": self.label_spec.describe(), "pairs": self.pairs_rule}

    def validate(self) -> None:
        k = self.kind
        if k == "ab":
            if not (self.a and self.b):
                raise InputError("--map: an A/B dataset needs both a=COLUMN and b=COLUMN", "Bad option")
            if not self.labels and not (self.score_a or self.score_b):
                raise InputError("--map a=...,b=...: say who won with label=COLUMN (or several: label=c1,c2), "
                                 "or score_a=COLUMN,score_b=COLUMN", "Bad option")
            if bool(self.score_a) != bool(self.score_b):
                raise InputError("--map: give both score_a and score_b", "Bad option")
        if k == "list":
            if not (self.rating or self.ratings or self.rank or self.ranks):
                raise InputError("--map completions=...: say how they are ordered with rating=KEY, ratings=COLUMN, "
                                 "rank=KEY, ranks=COLUMN or rank=@position (the list is best first)", "Bad option")
        if self.pairs_rule not in PAIR_RULES:
            raise InputError(f"--pairs {self.pairs_rule!r}: one of {', '.join(PAIR_RULES)}", "Bad option")
        for at in self.attrs:
            if at.role not in ("target", "spoiler"):
                raise InputError(f"--map role.{at.name}={at.role}: role is target or spoiler", "Bad option")
            if k == "list" and not at.item:
                raise InputError(f"--map attr.{at.name}: in a list of completions name the key inside each "
                                 f"item: attr.{at.name}=KEY", "Bad option")
            if k != "list" and not (at.a and at.b):
                raise InputError(f"--map attr.{at.name}: give both sides, attr.{at.name}.a=COLUMN and "
                                 f"attr.{at.name}.b=COLUMN (or .chosen/.rejected)", "Bad option")

    # -- labels ---------------------------------------------------------------------------------
    def needs_scan(self) -> bool:
        """With the default spelling, label values are looked at once before reading (1 vs 0/-1 sets)."""
        return bool(self.labels) and not self.label_spec.explicit

    def observe(self, row: dict) -> None:
        for cols in self.labels.values():
            for c in cols:
                v = row.get(c)
                vals = v.tolist() if hasattr(v, "tolist") else v
                for x in (vals if isinstance(vals, list) else [vals]):
                    self.observe_value(c, x)

    def observe_value(self, col: str, x: Any, times: int = 1) -> None:
        """One label value of ``col`` seen in ``times`` records (the scan of :meth:`observe`)."""
        if _missing(x):
            return
        counts = self._seen.setdefault(col, {})
        n = norm_label(x) if not isinstance(x, (dict, list)) else "(a list or object)"
        if n in counts or len(counts) < 50:
            counts[n] = counts.get(n, 0) + times
        else:
            counts["(other values)"] = counts.get("(other values)", 0) + times

    def resolve(self, source: str) -> None:
        """After a scan: refuse numeric labels whose meaning the default cannot know. The message lists
        every value seen over the whole column with its count, and the mappings the presets use; it
        never proposes a mapping of its own (a guess that inverts every label would run)."""
        for col, counts in self._seen.items():
            vals = set(counts)
            numeric = {v for v in vals if _NUMERIC_RE.match(v)}
            if numeric and not numeric <= {"1", "2"}:
                raise InputError(
                    f"{source}: label column {col!r} holds {value_counts(counts)}: which value means A won, "
                    f"which B won (and which a tie) the file does not say, and rmtui does not guess it for numbers "
                    f"other than 1/2. Say it with --label a=VALUE,b=VALUE[,tie=VALUE] as the dataset's card "
                    f"defines them. For reference: {preset_labels()}",
                    "Ambiguous label")

    def classify(self, value: Any, col: str) -> str:
        if self._lookup is None:
            self._lookup = self.label_spec.lookup()
        n = norm_label(value)
        cls = self._lookup.get(n)
        if cls is None:
            known = self.label_spec.describe()
            raise RowError("bad_label", f"label {col!r} = {str(value)[:40]!r} is not one of the known values "
                                        f"({known}); say what it means with --label")
        return cls

    def votes(self, row: dict, cols: list[str]) -> tuple[int, int, int]:
        va = vb = vt = 0
        for c in cols:
            if c not in row:
                raise RowError("missing_field", f"field {c!r} is missing")
            v = row[c]
            vals = v.tolist() if hasattr(v, "tolist") else v
            for x in (vals if isinstance(vals, list) else [vals]):
                if _missing(x):
                    continue
                cls = self.classify(x, c)
                va, vb, vt = va + (cls == "a"), vb + (cls == "b"), vt + (cls == "tie")
        if va + vb + vt == 0:
            raise RowError("missing_field", f"no label value in {', '.join(repr(c) for c in cols)}")
        return va, vb, vt


def value_counts(counts: dict[str, int], limit: int = 12) -> str:
    """``0 (432 records), 1 (512), 2 (380)``: numbers first, then by value; at most ``limit`` shown."""
    from analysis.textsafe import visible_line

    order = sorted(counts, key=lambda s: (not _NUMERIC_RE.match(s), float(s) if _NUMERIC_RE.match(s) else 0, s))
    parts = [f"{visible_line(v)[:30]} ({counts[v]:,}{_records(counts[v]) if i == 0 else ''})" for i, v in enumerate(order[:limit])]
    if len(order) > limit:
        parts.append(f"and {len(order) - limit} more values")
    return ", ".join(parts)


def _records(n: int) -> str:
    return " record" if n == 1 else " records"


def preset_labels() -> str:
    """Which label mapping each preset uses, and the default (no --label), as one line."""
    from analysis.datasets.presets import all_presets

    parts = [f"--preset {p.name} reads --label {p.label}" for p in all_presets().values() if p.label]
    default = ",".join(f"{c}={'|'.join(v)}" for c, v in DEFAULT_LABELS.items())
    return "; ".join(parts + [f"without --label: {default}"])


def majority(va: int, vb: int, vt: int) -> str:
    """The class with strictly the most votes; 'tie' when no class has a majority of its own."""
    top = max(va, vb, vt)
    winners = [c for c, n in (("a", va), ("b", vb), ("tie", vt)) if n == top]
    return winners[0] if len(winners) == 1 else "tie"


def _num(v: Any, col: str) -> float:
    if isinstance(v, bool):
        return float(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise RowError("bad_value", f"field {col!r} = {str(v)[:40]!r} is not a number") from None
    if math.isnan(f):
        raise RowError("missing_field", f"field {col!r} is missing or NaN")
    return f


def attr_value(v: Any) -> float | None:
    """A per-response attribute as a number: booleans 1/0, numbers, 'true'/'false'/'yes'/'no'; else None."""
    if v is None:
        return None
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        f = float(v)
        return None if math.isnan(f) else f
    s = str(v).strip().lower()
    if s in ("true", "yes", "safe"):
        return 1.0
    if s in ("false", "no", "unsafe"):
        return 0.0
    try:
        f = float(s)
    except ValueError:
        return None
    return None if math.isnan(f) else f


def _get_path(obj: Any, key: str) -> Any:
    """``"annotations.helpfulness.Rating"`` inside nested dicts; None when absent."""
    cur = obj
    for part in key.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


# ---------------------------------------------------------------------------------------------
# --map parsing


def parse_map(items: Iterable[str] | str | None, *, label: str | Iterable[str] | None = None,
              pairs: str | None = None, preset: str | None = None) -> tuple[dict[str, str], Shape | None]:
    """``--map`` items -> (plain mapping for the chosen/rejected reader, Shape or None).

    A plain map (only prompt/chosen/rejected/subset/split, one column each) gives ``Shape`` None so
    today's reader runs unchanged. ``label=c1,c2,c3``: a part without ``=`` continues the key before it.
    Each item is a group: a key given again in a later item (a user's --map after a preset's) replaces
    the earlier value.
    """
    if isinstance(items, str):
        items = [items]
    pairs_kv: list[tuple[int, str, str]] = []
    for gi, item in enumerate(items or []):
        last: str | None = None
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                if last is not None and (last in _LIST_KEYS or last.startswith("label:")):
                    pairs_kv.append((gi, last, part))
                    continue
                raise InputError(f"--map {part!r}: expected NAME=COLUMN, e.g. chosen=response_a", "Bad option")
            k, v = (s.strip() for s in part.split("=", 1))
            pairs_kv.append((gi, k, v))
            last = k
    shape = Shape(preset=preset)
    mapping: dict[str, str] = {}
    roles: dict[str, str] = {}
    group_of: dict[str, int] = {}
    attrs: dict[str, Attr] = {}

    def fresh(key: str, gi: int) -> bool:
        new = group_of.get(key) != gi
        group_of[key] = gi
        return new

    check_repeated_keys(pairs_kv)
    for gi, k, v in pairs_kv:
        if k == "prompt":
            if fresh("prompt", gi):
                shape.prompt = []
            shape.prompt += [c.strip() for c in v.split("+") if c.strip()]
        elif k in ("chosen", "rejected", "subset", "split"):
            setattr(shape, k, v)
            mapping[k] = v
        elif k == "label" or k.startswith("label:"):
            dim = None if k == "label" else k.split(":", 1)[1].strip()
            if dim == "":
                raise InputError(f"--map {k}=...: name the dimension after 'label:'", "Bad option")
            if fresh("label*", gi):  # a later group naming labels replaces all earlier labels
                shape.labels = {}
            shape.labels.setdefault(dim, [])
            shape.labels[dim].append(v)
        elif k.startswith("attr."):
            rest = k[5:]
            name, _, side = rest.partition(".")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
                raise InputError(f"--map {k}: attribute names are letters, digits and _", "Bad option")
            at = attrs.setdefault(name, Attr(name))
            if side in ("a", "b"):
                setattr(at, side, v)
            elif side in ("chosen", "rejected"):
                setattr(at, "a" if side == "chosen" else "b", v)
                at.sides = "cr"
            elif side == "":
                at.item = v
            else:
                raise InputError(f"--map {k}: expected attr.NAME.a / .b / .chosen / .rejected", "Bad option")
        elif k.startswith("role."):
            roles[k[5:]] = v
        elif k in SHAPE_KEYS:
            setattr(shape, k, v)
        else:
            allowed = sorted(PLAIN_KEYS | SHAPE_KEYS) + ["label:DIM", "attr.NAME.a/b", "role.NAME"]
            raise InputError(f"--map {k}={v}: {k!r} is not one of {', '.join(allowed)}", "Bad option")
    for name, role in roles.items():
        if name not in attrs:
            raise InputError(f"--map role.{name}: no attribute {name!r} is mapped (attr.{name}.a=...)", "Bad option")
        attrs[name].role = role
    shape.attrs = list(attrs.values())
    if label:
        shape.label_spec = parse_label_spec(label)
    if pairs:
        shape.pairs_rule = pairs
    if shape.prompt:
        mapping["prompt"] = shape.prompt[0]
    check_column_roles(shape, mapping)
    if len(shape.prompt) > 1 or shape.kind != "plain" or shape.attrs or shape.labels or label or pairs:
        if shape.kind == "plain" and (label or shape.labels):
            raise InputError("--label / label=...: map the two answers with a=COLUMN,b=COLUMN", "Bad option")
        shape.validate()
        return mapping, shape
    return mapping, None


def check_repeated_keys(pairs_kv: Iterable[tuple[int, str, str]]) -> None:
    """A key given twice in one ``--map`` group (``a=x,a=y``) is refused naming it: which one the user
    meant is not for rmtui to pick. ``label=c1,c2`` (one key, several columns) is one key."""
    seen: dict[tuple[int, str], str] = {}
    prev: tuple[int, str] | None = None
    for gi, k, v in pairs_kv:
        key = (gi, k)
        listy = k in _LIST_KEYS or k.startswith("label:")
        if key in seen and not (key == prev and listy):
            raise InputError(f"--map: {k!r} is given twice ({k}={seen[key]} and {k}={v}); give each key once",
                             "Bad option")
        seen.setdefault(key, v)
        prev = key


def check_user_map(items: Iterable[str] | str | None) -> None:
    """The user's own ``--map`` items (all flags together, not a preset's): a key given twice is refused."""
    if isinstance(items, str):
        items = [items]
    kv: list[tuple[int, str, str]] = []
    for item in items or []:
        for part in str(item).split(","):
            part = part.strip()
            if "=" in part:
                k, v = (x.strip() for x in part.split("=", 1))
                kv.append((0, k, v))
            elif part and kv:
                kv.append(kv[-1][:2] + (part,))  # label=c1,c2: a continuation of the key before it
    check_repeated_keys(kv)


def check_column_roles(shape: "Shape", mapping: dict[str, str]) -> None:
    """One column mapped to two roles (``a=text,b=text``, ``chosen=x,prompt=x``, a label column that
    is also a side) is refused naming the column."""
    roles: list[tuple[str, str]] = [("prompt", c) for c in shape.prompt]
    for k in ("chosen", "rejected", "a", "b", "completions", "score_a", "score_b", "subset", "split"):
        col = getattr(shape, k) or (mapping.get(k) if k in ("chosen", "rejected") else None)
        if col:
            roles.append((k, col))
    for dim, cols in shape.labels.items():
        roles += [("label" if dim is None else f"label:{dim}", c) for c in cols]
    owner: dict[str, str] = {}
    for role, col in roles:
        if col in owner and owner[col] != role:
            raise InputError(f"--map: column {col!r} is mapped to both {owner[col]} and {role}; each column "
                             "plays one role", "Bad option")
        if col in owner and role == owner[col] and role.startswith("label"):
            raise InputError(f"--map: column {col!r} is named twice in {role}", "Bad option")
        owner.setdefault(col, role)


# ---------------------------------------------------------------------------------------------
# rows -> pair specs


def featurizer_name(shape: Shape, dataset: str) -> str:
    """The featurizer the mapped attributes are stored under: ``featurizer=`` or the dataset's name."""
    if shape.featurizer:
        return shape.featurizer
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", dataset.split("/")[-1]).strip("_").lower()
    return slug or "dataset"
