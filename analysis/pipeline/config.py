"""The run configuration of ``rmtui run CONFIG.toml``: dataclasses parsed from TOML.

Every path in a config is relative to the config file's folder. String values may name environment
variables as ``${NAME}`` (or ``${NAME:-default}``); secrets such as API keys are never put in a config:
a featurizer or rewriter names the variable that holds the key (``api_key_env``) and reads it itself.

Every mistake raises :class:`ConfigError` naming the file and the key, e.g.
``configs/paper.toml: models[2].role: expected a string, got 3``.
"""

from __future__ import annotations

import glob
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis.errors import RmtuiError


class ConfigError(RmtuiError):
    title = "Bad config"


FORMATS = ("hh", "jsonl", "csv", "parquet", "hf")
SIDES = ("chosen", "rejected")


@dataclass
class DataSource:
    """One source of pairs: a file (glob allowed) or a Hugging Face dataset ``hf:NAME``."""

    source: str
    paths: list[str] = field(default_factory=list)  # resolved files (empty for hf:)
    format: str | None = None
    subset: str | None = None
    split: str | None = None
    hf_split: str = "train"
    data_dirs: list[str | None] = field(default_factory=lambda: [None])
    limit: int | None = None
    map: dict[str, str] = field(default_factory=dict)
    strict: bool = False
    preset: str | None = None   # analysis/resources/presets/NAME.toml (docs/datasets.md)
    label: str | None = None    # what label values mean: "a=1,b=2,tie=0"
    pairs: str | None = None    # best-worst | all | adjacent (rated/ranked lists)

    @property
    def is_hf(self) -> bool:
        return self.source.startswith("hf:")


@dataclass
class ModelConfig:
    spec: str
    role: str
    name: str
    device: str = "auto"
    dtype: str = "auto"
    format: str | None = None
    max_length: int | None = None
    token_budget: int | None = None  # None: the scorer's default (16384 on CUDA, 2048 on CPU)
    trust_remote_code: bool = False
    compile: bool = False
    chunk_size: int | None = None  # texts per committed chunk (default: the scorer's)
    engine: str | None = None  # local | ray | vllm-server (None: vllm-server for http:// specs, else local)
    ray_address: str | None = None  # engine ray: auto | HOST:PORT (None: a Ray started here)
    gpus: int | None = None         # engine ray: GPUs in all, one actor each (None: all; 0: CPU actors)
    actors: int | None = None       # engine ray: pool size
    tokenizer: str | None = None    # engine vllm-server: the served model's tokenizer

    def engine_options(self) -> dict[str, Any]:
        """Keyword options of the scoring engine (analysis.scoring.registry.make_backend)."""
        if self.engine == "ray":
            opts = {"address": self.ray_address, "gpus": self.gpus, "actors": self.actors}
        elif self.engine == "vllm-server" or self.spec.startswith(("http://", "https://")):
            opts = {"tokenizer": self.tokenizer}
        else:
            opts = {}
        return {k: v for k, v in opts.items() if v is not None}

    def settings_dict(self) -> dict[str, Any]:
        d = {
            "device": self.device, "dtype": self.dtype, "format": self.format,
            "max_length": self.max_length, "token_budget": self.token_budget,
            "trust_remote_code": self.trust_remote_code, "compile": self.compile,
        }
        if self.chunk_size is not None:
            d["chunk_size"] = self.chunk_size
        return d


@dataclass
class FeaturizerConfig:
    spec: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitConfig:
    enabled: bool = True
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RewriteConfig:
    rewriter: str = "rules"
    n: int | None = None
    fraction: float | None = None
    seed: int = 0
    sides: list[str] = field(default_factory=lambda: list(SIDES))
    perturbation: str | None = None
    robustness: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def sample_size(self, n_pairs: int) -> int:
        if self.n is not None:
            return min(self.n, n_pairs)
        assert self.fraction is not None
        return max(1, round(self.fraction * n_pairs)) if n_pairs else 0


@dataclass
class RunConfig:
    path: Path | None
    base_dir: Path
    study: Path
    data: list[DataSource]
    models: list[ModelConfig] = field(default_factory=list)
    featurizers: list[FeaturizerConfig] = field(default_factory=list)
    fit: FitConfig = field(default_factory=FitConfig)
    rewrite: RewriteConfig | None = None
    heldout: str | None = None  # "embedded": mark the pairs the embedded RMs never saw
    precomputed: Path | None = None  # shipped scores/feature values, taken after a recomputed sample agrees

    @property
    def name(self) -> str:
        return str(self.path) if self.path else "<config>"


# ---------------------------------------------------------------------------------------------
# parsing

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Ctx:
    def __init__(self, where: str, base_dir: Path):
        self.where = where
        self.base_dir = base_dir

    def err(self, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.where}: {key}: {msg}" if key else f"{self.where}: {msg}")

    # typed getters -------------------------------------------------------------------------------
    def expand(self, key: str, value: Any) -> Any:
        if isinstance(value, str):
            def sub(m: re.Match) -> str:
                name, default = m.group(1), m.group(2)
                v = os.environ.get(name)
                if v is None or v == "":
                    if default is not None:
                        return default
                    raise self.err(key, f"environment variable {name} is not set (used as ${{{name}}})")
                return v
            return _ENV_RE.sub(sub, value)
        if isinstance(value, list):
            return [self.expand(f"{key}[{i + 1}]", v) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.expand(f"{key}.{k}", v) for k, v in value.items()}
        return value

    def check_keys(self, table: dict, key: str, allowed: set[str]) -> None:
        for k in table:
            if k not in allowed:
                raise self.err(f"{key}.{k}" if key else k,
                               f"unknown key; expected one of: {', '.join(sorted(allowed))}")

    def get(self, table: dict, key: str, name: str, typ, default=None, *, required=False,
            choices: tuple | None = None):
        full = f"{key}.{name}" if key else name
        if name not in table:
            if required:
                raise self.err(full, "missing (required)")
            return default
        v = self.expand(full, table[name])
        types = typ if isinstance(typ, tuple) else (typ,)
        if float in types and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if bool not in types and isinstance(v, bool) or not isinstance(v, types):
            names = " or ".join(t.__name__ for t in types)
            raise self.err(full, f"expected {names}, got {v!r}")
        if choices is not None and v not in choices:
            raise self.err(full, f"{v!r} is not one of: {', '.join(map(str, choices))}")
        return v

    def get_int(self, table, key, name, default=None, *, minimum: int | None = None):
        v = self.get(table, key, name, int, default)
        if v is not None and minimum is not None and v < minimum:
            raise self.err(f"{key}.{name}" if key else name, f"must be >= {minimum}, got {v}")
        return v

    def str_list(self, table, key, name, default=None) -> list[str] | None:
        full = f"{key}.{name}" if key else name
        v = self.get(table, key, name, (list, str), default)
        if v is None:
            return None
        if isinstance(v, str):
            return [v]
        for i, x in enumerate(v):
            if not isinstance(x, str):
                raise self.err(f"{full}[{i + 1}]", f"expected a string, got {x!r}")
        return list(v)

    def path(self, p: str) -> Path:
        q = Path(os.path.expanduser(p))
        return q if q.is_absolute() else (self.base_dir / q)


def _table_list(ctx: _Ctx, raw: dict, name: str) -> list[dict]:
    v = raw.get(name, [])
    if isinstance(v, dict):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise ctx.err(name, "expected a table or an array of tables ([[%s]])" % name)
    return v


_SECRET_KEYS = {"api_key", "apikey", "key", "token", "password", "secret", "authorization"}


def _no_secrets(ctx: _Ctx, key: str, opts: dict) -> None:
    for k in opts:
        if k.lower() in _SECRET_KEYS:
            raise ctx.err(f"{key}.{k}", "secrets do not belong in a config (it is copied and recorded); "
                          "put the key in an environment variable and name it with api_key_env")
    if isinstance(opts.get("api_key_env"), str):
        from analysis.errors import EndpointError
        from analysis.llm.client import check_api_key_env

        try:
            check_api_key_env(opts["api_key_env"])
        except EndpointError as e:
            raise ctx.err(f"{key}.api_key_env", e.message) from None


def _parse_data(ctx: _Ctx, t: dict, key: str) -> DataSource:
    ctx.check_keys(t, key, {"source", "format", "subset", "split", "hf_split", "data_dir", "data_dirs",
                            "limit", "map", "strict", "preset", "label", "pairs"})
    source = ctx.get(t, key, "source", str, required=True)
    fmt = ctx.get(t, key, "format", str, choices=FORMATS)
    ds = DataSource(
        source=source, format=fmt,
        subset=ctx.get(t, key, "subset", str), split=ctx.get(t, key, "split", str),
        hf_split=ctx.get(t, key, "hf_split", str, "train"),
        limit=ctx.get_int(t, key, "limit", minimum=1),
        strict=ctx.get(t, key, "strict", bool, False),
        preset=ctx.get(t, key, "preset", str), label=ctx.get(t, key, "label", str),
        pairs=ctx.get(t, key, "pairs", str, choices=("best-worst", "all", "adjacent")),
    )
    m = ctx.get(t, key, "map", dict, {})
    for k, v in m.items():
        if not isinstance(v, str):
            raise ctx.err(f"{key}.map.{k}", f"expected a column name (string), got {v!r}")
    ds.map = dict(m)
    dirs = ctx.str_list(t, key, "data_dirs") or ctx.str_list(t, key, "data_dir")
    if dirs:
        if not (source.startswith("hf:") or fmt == "hf"):
            raise ctx.err(f"{key}.data_dirs", "only applies to hf: sources")
        ds.data_dirs = list(dirs)
    if not (source.startswith("hf:") or fmt == "hf"):
        full = ctx.path(source)
        if any(ch in source for ch in "*?["):
            paths = sorted(os.path.normpath(x) for x in glob.glob(str(full)))
            if not paths:
                raise ctx.err(f"{key}.source", f"{source!r} matches no file (relative to {ctx.base_dir})")
        else:
            if not full.exists():
                raise ctx.err(f"{key}.source", f"{full}: no such file")
            paths = [os.path.normpath(full)]
        ds.paths = paths
    return ds


def _parse_model(ctx: _Ctx, t: dict, key: str, i: int) -> ModelConfig:
    ctx.check_keys(t, key, {"spec", "role", "name", "device", "dtype", "format", "max_length",
                            "token_budget", "trust_remote_code", "compile", "chunk_size", "engine",
                            "ray_address", "gpus", "actors", "tokenizer"})
    spec = ctx.get(t, key, "spec", str, required=True)
    # a local folder relative to the config; hub ids and embedded:/hf: specs stay as they are
    if not spec.startswith(("embedded:", "hf:")) and (spec.startswith((".", "/", "~")) or ctx.path(spec).exists()):
        spec = str(ctx.path(spec))
    role = ctx.get(t, key, "role", str, required=True, choices=("pre", "post", "other"))
    return ModelConfig(
        spec=spec, role=role, name=ctx.get(t, key, "name", str, role),
        device=ctx.get(t, key, "device", str, "auto", choices=("auto", "cpu", "cuda", "mps")),
        dtype=ctx.get(t, key, "dtype", str, "auto", choices=("auto", "bf16", "fp16", "fp32")),
        format=ctx.get(t, key, "format", str, choices=("pair", "raw", "chat")),
        max_length=ctx.get_int(t, key, "max_length", minimum=8),
        token_budget=ctx.get_int(t, key, "token_budget", minimum=1),
        trust_remote_code=ctx.get(t, key, "trust_remote_code", bool, False),
        compile=ctx.get(t, key, "compile", bool, False),
        chunk_size=ctx.get_int(t, key, "chunk_size", minimum=1),
        engine=_model_engine(ctx, t, key, spec),
        ray_address=ctx.get(t, key, "ray_address", str),
        gpus=ctx.get_int(t, key, "gpus", minimum=0),
        actors=ctx.get_int(t, key, "actors", minimum=1),
        tokenizer=ctx.get(t, key, "tokenizer", str),
    )


def _model_engine(ctx: _Ctx, t: dict, key: str, spec: str) -> str | None:
    engine = ctx.get(t, key, "engine", str, choices=("local", "ray", "vllm-server"))
    served = spec.startswith(("http://", "https://"))
    if served and engine not in (None, "vllm-server"):
        raise ctx.err(f"{key}.engine", f"{spec} is a served RM: engine must be vllm-server (or left out)")
    if engine == "vllm-server" and not served:
        raise ctx.err(f"{key}.spec", "engine vllm-server needs spec = \"http://HOST:PORT/v1#MODEL\"")
    for opt in ("ray_address", "gpus", "actors"):
        if opt in t and engine != "ray":
            raise ctx.err(f"{key}.{opt}", f"{opt} is an option of engine = \"ray\"")
    if "tokenizer" in t and not served:
        raise ctx.err(f"{key}.tokenizer", "tokenizer is an option of a served RM (engine vllm-server)")
    return engine


def _parse_featurizer(ctx: _Ctx, t: dict | str, key: str) -> FeaturizerConfig:
    if isinstance(t, str):
        return FeaturizerConfig(spec=t)
    spec = ctx.get(t, key, "spec", str, required=True)
    opts = {k: ctx.expand(f"{key}.{k}", v) for k, v in t.items() if k not in ("spec", "options")}
    extra = ctx.get(t, key, "options", dict, {})
    opts.update(extra)
    _no_secrets(ctx, key, opts)
    from analysis.features.registry import unknown_options

    try:
        bad, takes = unknown_options(spec, opts)
    except RmtuiError as e:
        raise ctx.err(f"{key}.spec", e.message) from None
    if bad:
        raise ctx.err(f"{key}.{bad[0]}", f"{spec} takes no option {bad[0]!r}; it takes {', '.join(takes)}")
    if spec.startswith("file:"):
        spec = "file:" + str(ctx.path(spec[5:]))
    return FeaturizerConfig(spec=spec, options=opts)


def _rewriter_spec(ctx: _Ctx, spec: str) -> str:
    """rules | rules:PERTURBATION | llm | llm:MODEL: checked when the config is read."""
    from analysis.rewrite import RULE_PERTURBATIONS

    kind, _, arg = spec.partition(":")
    if kind not in ("rules", "llm"):
        raise ctx.err("rewrite.rewriter", f"{spec!r}: one of rules, rules:PERTURBATION, llm, llm:MODEL")
    if kind == "rules" and arg and arg not in RULE_PERTURBATIONS:
        raise ctx.err("rewrite.rewriter", f"{spec!r}: no perturbation {arg!r}; one of {', '.join(RULE_PERTURBATIONS)}")
    return spec


def _parse_rewrite(ctx: _Ctx, t: dict) -> RewriteConfig:
    key = "rewrite"
    ctx.check_keys(t, key, {"rewriter", "n", "fraction", "seed", "sides", "perturbation", "robustness",
                            "options", "enabled"})
    rw = RewriteConfig(
        rewriter=_rewriter_spec(ctx, ctx.get(t, key, "rewriter", str, "rules")),
        n=ctx.get_int(t, key, "n", minimum=1),
        fraction=ctx.get(t, key, "fraction", float),
        seed=ctx.get_int(t, key, "seed", 0),
        sides=ctx.str_list(t, key, "sides", list(SIDES)),
        perturbation=ctx.get(t, key, "perturbation", str),
        robustness=ctx.get(t, key, "robustness", bool, True),
        options=ctx.get(t, key, "options", dict, {}),
    )
    _no_secrets(ctx, f"{key}.options", rw.options)
    if (rw.n is None) == (rw.fraction is None):
        raise ctx.err(key, "give exactly one of n (pairs) or fraction (share of pairs, e.g. 0.01)")
    if rw.fraction is not None and not 0 < rw.fraction <= 1:
        raise ctx.err(f"{key}.fraction", f"must be in (0, 1], got {rw.fraction}")
    for i, s in enumerate(rw.sides):
        if s not in SIDES:
            raise ctx.err(f"{key}.sides[{i + 1}]", f"{s!r} is not one of: chosen, rejected")
    return rw


TOP_KEYS = {"study", "data", "models", "featurizers", "fit", "rewrite", "heldout", "precomputed"}


def parse_config(raw: dict, *, path: str | Path | None = None, base_dir: str | Path | None = None) -> RunConfig:
    """Validate a parsed TOML dict into a :class:`RunConfig`."""
    p = Path(path) if path is not None else None
    base = Path(base_dir) if base_dir is not None else (p.parent if p is not None else Path.cwd())
    ctx = _Ctx(str(p) if p else "<config>", base)
    if not isinstance(raw, dict):
        raise ctx.err("", "expected a TOML table")
    ctx.check_keys(raw, "", TOP_KEYS)
    study = ctx.get(raw, "", "study", str, "study.duckdb")
    data_tables = _table_list(ctx, raw, "data")
    if not data_tables:
        raise ctx.err("data", "missing: at least one [[data]] source is required")
    data = [_parse_data(ctx, t, f"data[{i + 1}]") for i, t in enumerate(data_tables)]
    models = [_parse_model(ctx, t, f"models[{i + 1}]", i) for i, t in enumerate(_table_list(ctx, raw, "models"))]
    names = [m.name for m in models]
    for i, n in enumerate(names):
        if names.index(n) != i:
            raise ctx.err(f"models[{i + 1}].name", f"{n!r} is used twice; give each model its own name")
    roles = [m.role for m in models]
    if models and not ("pre" in roles and "post" in roles):
        pass  # a study may hold any RMs; fit needs a pre and a post, checked where it runs
    feats_raw = raw.get("featurizers", [])
    if isinstance(feats_raw, (str, dict)):
        feats_raw = [feats_raw]
    if not isinstance(feats_raw, list):
        raise ctx.err("featurizers", "expected a list of specs or [[featurizers]] tables")
    featurizers = [_parse_featurizer(ctx, t, f"featurizers[{i + 1}]") for i, t in enumerate(feats_raw)]
    fit_raw = raw.get("fit", {})
    if not isinstance(fit_raw, dict):
        raise ctx.err("fit", "expected a table [fit]")
    fit = FitConfig(enabled=ctx.get(fit_raw, "fit", "enabled", bool, True),
                    options={k: ctx.expand(f"fit.{k}", v) for k, v in fit_raw.items() if k != "enabled"})
    for k, lo in (("tie_tol", 0.0), ("near_identical", 0.0)):  # checked here, not after ingest and scoring
        v = fit.options.get(k)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= lo):
            raise ctx.err(f"fit.{k}", f"must be a number >= {lo:g}, got {v!r}")
    rewrite = None
    if "rewrite" in raw:
        if not isinstance(raw["rewrite"], dict):
            raise ctx.err("rewrite", "expected a table [rewrite]")
        if raw["rewrite"].get("enabled", True) is not False:
            rewrite = _parse_rewrite(ctx, raw["rewrite"])
    if rewrite is not None and len(models) < 1:
        raise ctx.err("rewrite", "a rewrite experiment needs [[models]] to rescore the rewrites")
    heldout = ctx.get(raw, "", "heldout", str, None, choices=("embedded",))
    pre = ctx.get(raw, "", "precomputed", str, None)
    precomputed = ctx.path(pre) if pre else None
    if precomputed is not None and not (precomputed / "manifest.json").is_file():
        raise ctx.err("precomputed", f"{precomputed}: no manifest.json there (a folder written by "
                      "python -m analysis.store.precomputed build)")
    return RunConfig(path=p, base_dir=base, study=ctx.path(study), data=data, models=models,
                     featurizers=featurizers, fit=fit, rewrite=rewrite, heldout=heldout, precomputed=precomputed)


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML config file."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: no such config file", "Config not found")
    if p.is_dir():
        raise ConfigError(f"{p}: a folder, not a config file (rmtui run CONFIG.toml)",
                          "Config")
    try:
        with open(p, "rb") as f:
            raw = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: not UTF-8 text (byte {e.start} of the file)") from e
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror or e}") from e
    return parse_config(raw, path=p, base_dir=p.resolve().parent)


EXAMPLE_CONFIG = '''\
# rmtui run configuration: `rmtui run THIS.toml` runs ingest -> score -> featurize -> fit -> rewrite.
# Each step is skipped when its results are in the study and its inputs and settings are unchanged,
# so rerunning after an interruption or an edit does only what is needed.
# Paths are relative to this file's folder. "${NAME}" reads an environment variable
# ("${NAME:-default}" gives a default). Never put API keys here: name the variable that holds one.

# The study file (DuckDB) that receives everything.
study = "study.duckdb"

# Where the pairs come from: files (JSONL/CSV/Parquet, .gz ok, globs ok) or a hub dataset.
[[data]]
source = "sample_data/hh-rlhf/*.jsonl.gz"
# format = "hh"            # hh | jsonl | csv | parquet | hf (default: from the name)
# limit = 1000             # read at most N rows per file (quick trials)
# subset = "harmless-base" # default: from the file name
# split = "test"
# map = { prompt = "question", chosen = "answer_a", rejected = "answer_b" }
# An A/B set with a label column (`rmtui ingest --inspect FILE` proposes the map):
# map = { prompt = "prompt", a = "response 1", b = "response 2", label = "label", subset = "category" }
# label = "a=0,b=1,tie=2"  # what each label value means, from the dataset's card (A = the first answer,
#                          # B = the second; several values with |). Numbers other than 1/2 are never
#                          # guessed: without it such a set is refused, listing the values seen
# preset = "chatbot-arena" # a known dataset's map and label (rmtui ingest --preset list)
# pairs = "best-worst"     # rated/ranked lists: best-worst | all | adjacent

# [[data]]                 # the paper's training data, from the Hugging Face hub
# source = "hf:Anthropic/hh-rlhf"
# hf_split = "train"
# data_dirs = ["harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled"]

# The reward models: a hub id, a local folder, or embedded:pre / embedded:post. role "pre" is the RM
# before training on the dataset, "post" after it.
[[models]]
spec = "embedded:pre"
role = "pre"
# name = "pre"             # default: the role
# format = "pair"          # pair | raw | chat (default: chosen by rule)
# device = "auto"          # auto | cpu | cuda
# dtype = "auto"           # auto (bf16 on cuda, fp32 on cpu) | bf16 | fp16 | fp32
# max_length = 2048        # truncate (context from the left) only when set
# token_budget = 16384     # padded tokens per batch (default: 16384 on CUDA, 2048 on CPU)
# chunk_size = 1024        # texts per committed chunk (what an interruption can lose)
# engine = "ray"           # local (default) | ray (a Ray cluster) | vllm-server (spec = "http://HOST:PORT/v1#MODEL")
# ray_address = "auto"     # engine ray: auto (this node's cluster) | HOST:PORT (default: a Ray started here)
# gpus = 8                 # engine ray: GPUs in all, one actor each (default: all; 0: CPU actors)

[[models]]
spec = "embedded:post"
role = "post"

# Featurizers: "heuristic" (offline proxies), "llm" (an OpenAI-compatible endpoint),
# "hf:MODEL" (a classifier), "file:PATH" (import labels).
[[featurizers]]
spec = "heuristic"

# [[featurizers]]
# spec = "llm"
# base_url = "${RMTUI_LLM_BASE_URL}"
# model = "${RMTUI_LLM_MODEL}"
# api_key_env = "OPENAI_API_KEY"   # the variable's name; the key itself is never stored

# Fit options, passed to analysis.fit.study_fit.fit_study (feature imprint, regimes, theta, drivers).
[fit]
# enabled = true
# se = "cluster"           # cluster (by pair) | iid
# pair_fe = false          # pair fixed effects
# features = ["heuristic.length", "heuristic.sentiment"]   # default: every feature in the study

# A robustness experiment: rewrite a seeded sample, rescore, refit (optional).
[rewrite]
rewriter = "rules"         # rules | rules:PERTURBATION | llm
n = 200                    # or: fraction = 0.01
seed = 0
sides = ["chosen", "rejected"]
# robustness = true        # fit the robustness score after the experiment

# heldout = "embedded"     # mark the pairs the embedded demo RMs never saw in training
# precomputed = "results"  # shipped scores and offline feature values (python -m analysis.store.precomputed
#                          # build): taken only after a recomputed sample of them agrees
'''
