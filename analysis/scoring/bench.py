"""Benchmarks (``rmtui bench scoring`` and benchmarks/bench_scoring.py): the paper's naive loop
against the engine, random-weight models of named shapes, sample texts."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.datasets.readers import join_transcript
from analysis.errors import RmtuiError
from analysis.scoring.models import RewardModel, _dedupe

RANDOM_SHAPES = {
    # DeBERTa-v3-large shape: the paper's RMs (OpenAssistant/reward-model-deberta-v3-large[-v2])
    "deberta-v3-large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                             intermediate_size=4096, vocab_size=128100),
    "deberta-v3-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                            intermediate_size=3072, vocab_size=128100),
    "tiny-deberta": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, vocab_size=30522),
}


def random_model_folder(shape: str, dest: str | Path, *, seed: int = 0, layers: int | None = None) -> Path:
    """Save a random-weight DeBERTa-v2 sequence classifier of a named shape with a real WordPiece
    tokenizer (sample_data's bert-base-uncased vocabulary) to ``dest``: a stand-in for GPU timing.
    ``layers`` keeps the shape's widths with fewer layers (per-layer measurements on a CPU)."""
    import torch
    from transformers import BertTokenizerFast, DebertaV2Config, DebertaV2ForSequenceClassification

    if shape not in RANDOM_SHAPES:
        raise RmtuiError(f"--from-config {shape!r}: expected one of {', '.join(RANDOM_SHAPES)}", "Bad option")
    vocab = Path(__file__).resolve().parents[2] / "sample_data" / "tokenizers" / "bert-base-uncased-vocab.txt"
    if not vocab.exists():
        raise RmtuiError(f"{vocab}: the sample vocabulary is missing (needed for --from-config)", "Missing file")
    dest = Path(dest)
    torch.manual_seed(seed)
    widths = RANDOM_SHAPES[shape] | ({"num_hidden_layers": layers} if layers else {})
    cfg = DebertaV2Config(
        **widths, max_position_embeddings=512, relative_attention=True,
        position_buckets=256, pos_att_type=["p2c", "c2p"], position_biased_input=False,
        norm_rel_ebd="layer_norm", share_att_key=True, hidden_act="gelu", layer_norm_eps=1e-7,
        type_vocab_size=0, num_labels=1, pad_token_id=0,
    )
    model = DebertaV2ForSequenceClassification(cfg).eval()
    tok = BertTokenizerFast(vocab=str(vocab), do_lower_case=True, model_max_length=512)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data" / "hh-rlhf"


def sample_texts(path: str | Path | None = None, n: int = 256, *, seed: int = 0) -> pd.DataFrame:
    """A text frame (both texts of each pair) for benchmarks.

    ``path`` None: the first pairs of sample_data's harmless-base; ``"all"``: pairs drawn at random
    (seeded) from all four sample_data hh-rlhf subsets, i.e. hh-rlhf's own length mix; else a file.
    """
    from analysis.datasets.readers import Pair, ReadOptions, read_pairs
    from analysis.hashing import text_id

    if path is None or path == "all":
        files = (sorted(SAMPLE_DIR.glob("*.jsonl.gz")) if path == "all"
                 else [SAMPLE_DIR / "harmless-base-test.jsonl.gz"])
        if not files or not all(f.exists() for f in files):
            raise RmtuiError(f"{SAMPLE_DIR}: sample data not found; pass --texts FILE", "Missing file")
    else:
        files = [Path(path)]
    limit = None if path == "all" else max(n, 1) * 2
    pairs = [item for f in files for item in read_pairs(str(f), ReadOptions(limit=limit))
             if isinstance(item, Pair)]
    if path == "all":
        rng = np.random.default_rng(seed)
        pairs = [pairs[i] for i in rng.permutation(len(pairs))]
    rows = []
    seen = set()
    for item in pairs:
        for c, r in ((item.chosen_context, item.chosen_response), (item.rejected_context, item.rejected_response)):
            tid = text_id(c, r)
            if tid not in seen:
                seen.add(tid)
                rows.append((tid, c, r, join_transcript(c, r)))
        if len(rows) >= n:
            break
    return pd.DataFrame(rows[:n], columns=["text_id", "context", "response", "text"])


def naive_scores(rm: RewardModel, texts: pd.DataFrame) -> np.ndarray:
    """The paper's loop: each text tokenized on its own and run in its own forward pass, fp32 model,
    GPU cache emptied after every pair.

    Uses ``rm``'s tokenizer, format and truncation (so rewards are comparable) but an fp32 copy of
    the weights when the engine runs in bf16/fp16, and transformers' own attention.
    """
    from analysis.models.deberta_attention import unpatched

    texts = _dedupe(texts)
    with unpatched(getattr(rm.model, "_orig_mod", rm.model)) as plain:  # transformers' own forward
        model = plain if rm.dtype == "fp32" else copy.deepcopy(plain).float()
        return _naive_loop(rm, model, texts)


def _naive_loop(rm: RewardModel, model, texts: pd.DataFrame) -> np.ndarray:
    import torch

    out = np.empty(len(texts))
    for i in range(len(texts)):
        enc = rm._encode_part(texts.iloc[i:i + 1])
        inputs = {"input_ids": torch.tensor([enc.ids[0]], device=rm.device)}
        if enc.type_ids is not None:
            inputs["token_type_ids"] = torch.tensor([enc.type_ids[0]], device=rm.device)
        with torch.no_grad():
            logits = model(**inputs).logits
        out[i] = float(logits[0, 1] - logits[0, 0]) if rm.num_labels == 2 else float(logits[0, 0])
        if i % 2 == 1 and rm.device == "cuda":
            torch.cuda.empty_cache()
    return out


@dataclass
class BenchResult:
    n: int              # texts the engine scored
    n_naive: int        # texts the naive loop scored (the first n_naive of them)
    naive_s: float
    engine_s: float
    naive_tps: float
    engine_tps: float
    ratio: float        # engine texts/s over naive texts/s
    max_abs_diff: float  # over the texts both scored
    n_truncated: int
    device: str
    dtype: str
    model: str
    token_budget: int
    mean_tokens: float = 0.0
    naive_mean_tokens: float = 0.0  # of the naive loop's texts: its subset can be shorter or longer

    @property
    def engine_tokens_per_s(self) -> float:
        """Tokens/s: comparable across tokenizers and text mixes, where texts/s is not."""
        return self.engine_tps * self.mean_tokens

    @property
    def naive_tokens_per_s(self) -> float:
        return self.naive_tps * self.naive_mean_tokens


def bench(rm: RewardModel, texts: pd.DataFrame, *, warmup: int = 4, naive_n: int | None = None) -> BenchResult:
    """Time the naive loop and the engine in this process and compare their rewards.

    The engine scores all of ``texts``; the naive loop the first ``naive_n`` (default all: at a few
    texts/s on a GPU a subset gives the same texts/s in far less time). The ratio is of texts/s.
    """
    texts = _dedupe(texts)
    naive_texts = texts if not naive_n or naive_n >= len(texts) else texts.head(naive_n)
    if warmup:
        rm.score_frame(texts.head(warmup))
        naive_scores(rm, texts.head(warmup))
    _sync(rm.device)
    t0 = time.perf_counter()
    naive = naive_scores(rm, naive_texts)
    _sync(rm.device)
    t_naive = time.perf_counter() - t0
    t0 = time.perf_counter()
    eng = rm.score_frame(texts)
    _sync(rm.device)
    t_eng = time.perf_counter() - t0
    k = len(naive_texts)
    diff = float(np.max(np.abs(eng["reward"].to_numpy()[:k] - naive))) if k else 0.0
    n = len(texts)
    naive_tps, engine_tps = k / t_naive, n / t_eng
    return BenchResult(n=n, n_naive=k, naive_s=t_naive, engine_s=t_eng, naive_tps=naive_tps,
                       engine_tps=engine_tps, ratio=engine_tps / naive_tps, max_abs_diff=diff,
                       n_truncated=int(eng["truncated"].sum()), device=rm.device, dtype=rm.dtype,
                       model=rm.name, token_budget=rm.runner.budget,
                       mean_tokens=float(eng["n_tokens"].mean()) if n else 0.0,
                       naive_mean_tokens=float(eng["n_tokens"].to_numpy()[:k].mean()) if k else 0.0)


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


@dataclass
class EngineBenchResult:
    """The same texts scored in-process and by another engine (``rmtui bench scoring --engine ray``)."""

    n: int
    engine: str
    local_s: float
    engine_s: float           # end to end: for Ray, the job's start, actors' start and model load included
    busy_s: float             # the engine's workers' scoring time, summed (Ray: inside the actors)
    n_workers: int
    max_abs_diff: float
    local_device: str
    engine_desc: str

    @property
    def local_tps(self) -> float:
        return self.n / self.local_s if self.local_s > 0 else 0.0

    @property
    def engine_tps(self) -> float:
        return self.n / self.engine_s if self.engine_s > 0 else 0.0

    @property
    def worker_tps(self) -> float:
        """Texts/s of one worker while it scores (no start-up, no transfer)."""
        return self.n / self.busy_s if self.busy_s > 0 else 0.0

    @property
    def ratio(self) -> float:
        """Engine texts/s (end to end) over in-process texts/s."""
        return self.engine_tps / self.local_tps if self.local_tps > 0 else 0.0


def bench_engine(rm: RewardModel, backend, texts: pd.DataFrame, *, warmup: int = 4) -> EngineBenchResult:
    """Time ``rm`` in this process and ``backend`` (e.g. a RayBackend of the same model and
    settings; or a function that makes it, called after the in-process timing so that a cluster
    starting up does not share the CPUs with it) on the same texts; compare their rewards."""
    texts = _dedupe(texts)
    if warmup:
        rm.score_frame(texts.head(warmup))
    _sync(rm.device)
    t0 = time.perf_counter()
    local = rm.score_frame(texts)
    _sync(rm.device)
    t_local = time.perf_counter() - t0
    if callable(backend) and not hasattr(backend, "iter_results"):
        backend = backend()
    parts = []
    t0 = time.perf_counter()
    for part in backend.iter_results(texts):
        parts.append(part)
    t_engine = time.perf_counter() - t0
    busy = getattr(backend, "busy_seconds", lambda: 0.0)()
    got = (pd.concat(parts, ignore_index=True).drop_duplicates("text_id").set_index("text_id")["reward"]
           .reindex(local["text_id"]).to_numpy() if parts else np.array([]))
    diff = float(np.nanmax(np.abs(got - local["reward"].to_numpy()))) if len(got) else 0.0
    if len(got) and np.isnan(got).any():
        diff = float("inf")  # a text the engine did not return
    desc = getattr(backend, "engine", "?")
    if desc == "ray":
        desc = f"ray: {backend.n_actors} actor(s), {backend.gpus_per_actor:g} GPU, {backend.cpus_per_actor:g} CPU each"
    return EngineBenchResult(n=len(texts), engine=backend.engine, local_s=t_local, engine_s=t_engine,
                             busy_s=busy, n_workers=int(getattr(backend, "n_actors", 1)), max_abs_diff=diff, local_device=rm.device,
                             engine_desc=desc)
