"""Benchmarks (``rmtui bench scoring`` and benchmarks/bench_scoring.py): the paper's naive loop
against the engine, random-weight models of named shapes, sample texts."""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.datasets.readers import join_transcript
from analysis.errors import RmtuiError
from analysis.scoring.batching import BatchRunner
from analysis.scoring.models import RewardModel, _dedupe

RANDOM_SHAPES = {
    # DeBERTa-v3-large shape: the paper's RMs (OpenAssistant/reward-model-deberta-v3-large[-v2])
    "deberta-v3-large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                             intermediate_size=4096, vocab_size=128100),
    "deberta-v3-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                            intermediate_size=3072, vocab_size=128100),
    "tiny-deberta": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, vocab_size=30522),
    # Llama-3-8B shape: the decoder RMs of today (e.g. Skywork-Reward-Llama-3.1-8B), 7.5e9 parameters
    "llama-8b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                     intermediate_size=14336, vocab_size=128256),
    "tiny-llama": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       intermediate_size=128, vocab_size=30522),
}
DECODER_SHAPES = ("llama-8b", "tiny-llama")  # LlamaForSequenceClassification; the others DeBERTa-v2
_VOCAB = Path(__file__).resolve().parents[2] / "sample_data" / "tokenizers" / "bert-base-uncased-vocab.txt"


def shape_family(shape: str) -> str:
    """``llama`` or ``deberta-v2``: the model class a named shape is built as."""
    if shape not in RANDOM_SHAPES:
        raise RmtuiError(f"shape {shape!r}: expected one of {', '.join(RANDOM_SHAPES)}", "Bad option")
    return "llama" if shape in DECODER_SHAPES else "deberta-v2"


def random_config(shape: str, *, layers: int | None = None, init_std: float | None = None):
    """The transformers config of a named shape (a sequence classifier with one label, pad id 0: the
    sample vocabulary's [PAD]); ``layers`` keeps the widths with fewer layers; ``init_std`` the
    random weights' standard deviation (transformers' ``initializer_range``, default 0.02)."""
    family = shape_family(shape)
    widths = RANDOM_SHAPES[shape] | ({"num_hidden_layers": layers} if layers else {})
    if init_std is not None:
        widths["initializer_range"] = float(init_std)
    if family == "llama":
        from transformers import LlamaConfig

        cfg = LlamaConfig(**widths, max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5,
                          num_labels=1, pad_token_id=0, bos_token_id=101, eos_token_id=102,
                          tie_word_embeddings=False)
        cfg.architectures = ["LlamaForSequenceClassification"]
        return cfg
    from transformers import DebertaV2Config

    cfg = DebertaV2Config(
        **widths, max_position_embeddings=512, relative_attention=True,
        position_buckets=256, pos_att_type=["p2c", "c2p"], position_biased_input=False,
        norm_rel_ebd="layer_norm", share_att_key=True, hidden_act="gelu", layer_norm_eps=1e-7,
        type_vocab_size=0, num_labels=1, pad_token_id=0,
    )
    cfg.architectures = ["DebertaV2ForSequenceClassification"]
    return cfg


def _model_class(shape: str):
    from transformers import DebertaV2ForSequenceClassification, LlamaForSequenceClassification

    return LlamaForSequenceClassification if shape_family(shape) == "llama" else DebertaV2ForSequenceClassification


def random_model_folder(shape: str, dest: str | Path, *, seed: int = 0, layers: int | None = None,
                        weights: bool = True) -> Path:
    """Save a random-weight sequence classifier of a named shape (DeBERTa-v2, or Llama for
    :data:`DECODER_SHAPES`) with a real WordPiece tokenizer (sample_data's bert-base-uncased
    vocabulary) to ``dest``: a stand-in for GPU timing. ``layers`` keeps the shape's widths with fewer
    layers (per-layer measurements on a CPU). ``weights=False`` saves the config and tokenizer only
    (for :func:`random_reward_model`, which builds the weights on the device)."""
    import torch
    from transformers import BertTokenizerFast

    if shape not in RANDOM_SHAPES:
        raise RmtuiError(f"--from-config {shape!r}: expected one of {', '.join(RANDOM_SHAPES)}", "Bad option")
    if not _VOCAB.exists():
        raise RmtuiError(f"{_VOCAB}: the sample vocabulary is missing (needed for --from-config)", "Missing file")
    dest = Path(dest)
    cfg = random_config(shape, layers=layers)
    tok = BertTokenizerFast(vocab=str(_VOCAB), do_lower_case=True, model_max_length=512)
    dest.mkdir(parents=True, exist_ok=True)
    if weights:
        torch.manual_seed(seed)
        model = _model_class(shape)(cfg).eval()
        model.save_pretrained(dest)
    else:
        cfg.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def random_reward_model(shape: str, settings, dest: str | Path, *, seed: int = 0, layers: int | None = None,
                        init_std: float | None = None):
    """A random-weight RM of a named shape, its weights made on the device in the engine's dtype
    (an 8B model is never written to disk nor made in fp32 first): ``(rm, module)``, ``rm``
    configured by the engine's own loader from a config-and-tokenizer folder at ``dest``
    (:func:`load_reward_model` with ``weights=False``), ``module`` the bare model (attach it with
    :func:`analysis.scoring.loading.attach_model`, which patches and compiles as settings ask)."""
    import torch

    from analysis.scoring.loading import _resolve_device, _torch_dtype, load_reward_model

    settings = copy.copy(settings)
    settings.device = _resolve_device(settings.device)
    folder = random_model_folder(shape, dest, layers=layers, weights=False)
    rm = load_reward_model(str(folder), settings, name=shape, weights=False)
    cfg = random_config(shape, layers=layers, init_std=init_std)
    torch.manual_seed(seed)
    if rm.device == "cuda":
        torch.cuda.manual_seed_all(seed)
    with torch.device(rm.device):
        model = _model_class(shape)._from_config(cfg, dtype=_torch_dtype(rm.dtype))
    return rm, model.eval()


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


# ---------------------------------------------------------------------------------------------
# rmtui bench gpu: the matrix of engine options at a fixed text shape

GPU_BAR = 1500.0  # texts/s of the deberta-v3-large shape at 2,048 x 256 tokens, bf16, on an H100/H200


def synthetic_texts(rm: RewardModel, n: int, tokens: int, *, seed: int = 0) -> pd.DataFrame:
    """``n`` distinct texts (text_id, context, response, text) of exactly ``tokens`` tokens each in
    ``rm``'s format and tokenizer: random words of the vocabulary that are one token each, split
    between context and response. Checked by encoding them; raises RmtuiError if they miss."""
    from analysis.hashing import text_id

    tok = rm.tokenizer
    words = sorted(w for w in tok.get_vocab() if w.isascii() and w.isalpha() and w.islower() and len(w) >= 3)
    words = [w for w, ids in zip(words, tok(words, add_special_tokens=False)["input_ids"]) if len(ids) == 1]
    if len(words) < 100:
        raise RmtuiError(f"{rm.name}: its vocabulary has too few one-token words to make texts of "
                         f"{tokens} tokens", "Bench")
    probe = pd.DataFrame({"text_id": ["a"], "context": [words[0]], "response": [words[1]]})
    untruncated = copy.copy(rm)
    untruncated.max_length = 1 << 20
    overhead = int(untruncated.encode(probe).lengths[0]) - 2  # special tokens (a template's) around 2 words
    body = tokens - overhead
    if body < 2:
        raise RmtuiError(f"--tokens {tokens}: must be at least {overhead + 2} for {rm.name} ({rm.format} "
                         f"format adds {overhead} tokens)", "Bad option")
    rng = np.random.default_rng(seed)
    pool = np.array(words)
    rows = []
    for _ in range(n):
        w = pool[rng.integers(0, len(pool), body)]
        c, r = " ".join(w[:body // 2]), " ".join(w[body // 2:])
        rows.append((text_id(c, r), c, r, join_transcript(c, r)))
    frame = pd.DataFrame(rows, columns=["text_id", "context", "response", "text"]).drop_duplicates("text_id")
    enc = rm.encode(frame)
    if len(frame) != n or enc.truncated.any() or (enc.lengths != tokens).any():
        raise RmtuiError(f"{rm.name}: synthetic texts came out at {int(enc.lengths.min())}-"
                         f"{int(enc.lengths.max())} tokens, not {tokens} ({rm.format} format)", "Bench")
    return frame.reset_index(drop=True)


@dataclass
class MatrixRow:
    """One row of ``rmtui bench gpu``: one model shape under one set of engine options."""

    shape: str
    label: str                  # "eager, fused attn" | "eager, hf attn" (transformers' own) | "compiled, ..."
    compiled: bool
    fused_attention: bool | None  # None: not a DeBERTa-v2 model (nothing to fuse)
    device: str
    dtype: str
    n: int
    tokens: int
    seconds: float | None = None      # the timed pass (after a warm-up pass)
    texts_per_s: float | None = None
    warmup_s: float | None = None     # the warm-up pass: torch.compile's compilation happens there
    build_s: float | None = None      # making the random-weight model (once per shape)
    peak_memory_bytes: int | None = None
    peak_memory_kind: str = ""        # "cuda max allocated" | "process peak RSS"
    max_abs_diff: float | None = None  # max |reward - the first row's of this shape|
    rel_diff: float | None = None     # max_abs_diff over the std of the first row's rewards
    reward_std: float | None = None
    agree: bool | None = None
    bar: float | None = None          # texts/s the row must reach (None: the bar does not apply)
    passed: bool | None = None
    token_budget: int | None = None
    n_oom: int = 0
    error: str | None = None

    @property
    def tokens_per_s(self) -> float | None:
        return None if self.texts_per_s is None else self.texts_per_s * self.tokens

    def record(self) -> dict:
        d = dataclasses.asdict(self)
        d["tokens_per_s"] = self.tokens_per_s
        return d


def _peak_reset(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()


def _peak(device: str) -> tuple[int | None, str]:
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated()), "cuda max allocated"
    try:
        import resource
        import sys

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(rss if sys.platform == "darwin" else rss * 1024), "process peak RSS"
    except Exception:  # pragma: no cover - no resource module (Windows)
        return None, ""


def _release(device: str) -> None:
    import gc

    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def _error_text(e: BaseException) -> str:
    msg = getattr(e, "message", None) or str(e)
    first = msg.strip().splitlines()[0] if msg.strip() else ""
    return f"{type(e).__name__}: {first}"[:300]


def bench_matrix(*, shape: str = "deberta-v3-large", decoder_shape: str | None = "llama-8b",
                 n: int = 2048, tokens: int = 256, device: str = "auto", dtype: str = "auto",
                 compile: bool = True, bar: float = GPU_BAR, seed: int = 0, token_budget: int | None = None,
                 init_std: float | None = 0.2, decoder_n: int | None = None, layers: int | None = None,
                 on_row=None, tmp_dir: str | Path | None = None) -> list[MatrixRow]:
    """Time the engine on ``n`` texts of exactly ``tokens`` tokens: the encoder ``shape`` eager and
    (``compile``) torch.compiled, each with the fused DeBERTa attention on and off; then the
    ``decoder_shape`` (None: skipped) eager on ``decoder_n`` texts (default ``n``).

    Each model is made once with random weights on the device in the engine's dtype (bf16 on CUDA,
    fp32 on CPU unless ``dtype`` says) and serves its rows in turn, so rewards compare across rows:
    each row's max |difference| is to the first row of its shape. Each row scores the texts once to
    warm up (compilation happens there), then once timed. ``init_std`` 0.2 (not transformers' 0.02)
    so that random rewards spread and the difference means something. ``bar``: texts/s the encoder's
    rows must reach on CUDA (none on a CPU; nor for the decoder: an 8B model costs about 20x the
    encoder's FLOPs per token). A row that fails (a compile error, out of memory) carries its
    error and the rest still run. ``on_row(row)`` is called as each row ends."""
    import tempfile

    import torch

    from analysis.scoring.loading import _resolve_device, _resolve_dtype, attach_model
    from analysis.scoring.settings import ScoreSettings

    if n < 1:
        raise RmtuiError(f"--n {n}: must be at least 1", "Bad option")
    if tokens < 4:
        raise RmtuiError(f"--tokens {tokens}: must be at least 4", "Bad option")
    for s in (shape, decoder_shape):
        if s is not None:
            shape_family(s)
    if shape_family(shape) != "deberta-v2":
        raise RmtuiError(f"--shape {shape!r}: expected an encoder shape (a DeBERTa-v2 one)", "Bad option")
    if decoder_shape is not None and shape_family(decoder_shape) != "llama":
        raise RmtuiError(f"--decoder-shape {decoder_shape!r}: expected one of {', '.join(DECODER_SHAPES)}",
                         "Bad option")
    device = _resolve_device(device)
    dtype = _resolve_dtype(dtype, device)
    base = ScoreSettings(device=device, dtype=dtype, max_length=tokens, token_budget=token_budget)
    base.validate()
    plans = [(shape, n, [("eager, fused attn", False, True), ("eager, hf attn", False, False)]
              + ([("compiled, fused attn", True, True), ("compiled, hf attn", True, False)]
                 if compile else []))]
    if decoder_shape is not None:
        plans.append((decoder_shape, decoder_n or n, [("eager", False, None)]))
    rows: list[MatrixRow] = []
    with tempfile.TemporaryDirectory(prefix="rmtui-bench-gpu-", dir=tmp_dir) as tmp:
        for model_shape, count, variants in plans:
            rows += _bench_shape(model_shape, count, tokens, variants, base, bar if device == "cuda" and
                                 model_shape == shape else None, seed, init_std, layers, Path(tmp), on_row,
                                 attach_model, torch)
            _release(device)
    return rows


def _bench_shape(shape, n, tokens, variants, base, bar, seed, init_std, layers, tmp, on_row, attach_model,
                 torch) -> list[MatrixRow]:
    device, dtype = base.device, base.dtype

    def row_of(label, compiled, fused) -> MatrixRow:
        return MatrixRow(shape=shape, label=label, compiled=compiled, fused_attention=fused, device=device,
                         dtype=dtype, n=n, tokens=tokens, bar=bar)

    rows: list[MatrixRow] = []
    try:
        t0 = time.perf_counter()
        rm, module = random_reward_model(shape, base, tmp / shape, seed=seed, layers=layers, init_std=init_std)
        _sync(device)
        build_s = time.perf_counter() - t0
        texts = synthetic_texts(rm, n, tokens, seed=seed)
    except RmtuiError as e:
        if e.title == "Bad option":  # --tokens too few for the format: the command's error, not a row's
            raise
        return _all_failed(rows, variants, row_of, e, on_row)
    except Exception as e:  # the model could not be made (out of memory, ...): every row says so
        return _all_failed(rows, variants, row_of, e, on_row)
    first: np.ndarray | None = None
    for label, compiled, fused in variants:
        row = row_of(label, compiled, fused)
        row.build_s = build_s
        try:
            settings = dataclasses.replace(base, compile=compiled, fused_attention=bool(fused))
            row_rm = copy.copy(rm)
            row_rm.runner = BatchRunner(rm.runner.budget, max_batch_size=settings.max_batch_size)
            attach_model(row_rm, module, settings)
            if fused is not None:  # what the module runs, not what was asked
                row.fused_attention = row_rm._fused_attention
            # warm-up: all the texts when compiled (every batch shape seen), two batches when eager
            per_batch = max(1, row_rm.runner.budget // tokens)
            t0 = time.perf_counter()
            row_rm.score_frame(texts if compiled else texts.head(2 * per_batch))
            _sync(device)
            row.warmup_s = time.perf_counter() - t0
            _peak_reset(device)
            t0 = time.perf_counter()
            out = row_rm.score_frame(texts)
            _sync(device)
            row.seconds = time.perf_counter() - t0
            row.peak_memory_bytes, row.peak_memory_kind = _peak(device)
            row.texts_per_s = n / row.seconds if row.seconds > 0 else float("inf")
            row.token_budget, row.n_oom = row_rm.runner.budget, row_rm.runner.n_oom
            rewards = out["reward"].to_numpy()
            if first is None:
                first = rewards
            row.max_abs_diff = float(np.max(np.abs(rewards - first)))
            row.reward_std = float(np.std(first))
            row.rel_diff = row.max_abs_diff / row.reward_std if row.reward_std > 0 else (
                0.0 if row.max_abs_diff == 0 else float("inf"))
            row.agree = row.rel_diff < (1e-3 if dtype == "fp32" else 5e-2)
            if bar is not None:
                row.passed = row.texts_per_s >= bar
        except Exception as e:
            row.error = _error_text(e)
        finally:
            if compiled:
                torch._dynamo.reset()
            _release(device)
        rows.append(row)
        if on_row:
            on_row(row)
    del module, rm
    return rows


def _all_failed(rows, variants, row_of, e, on_row) -> list[MatrixRow]:
    for label, compiled, fused in variants:
        row = row_of(label, compiled, fused)
        row.error = _error_text(e)
        rows.append(row)
        if on_row:
            on_row(row)
    return rows
