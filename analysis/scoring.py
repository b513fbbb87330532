"""Reward-model scoring: load any sequence-classification RM, score texts fast and reproducibly.

What the paper's code did: one text per forward pass in fp32, GPU cache emptied after every pair.
What this module does instead:

- texts are tokenized per *chunk* (``ScoreSettings.chunk_size`` texts), sorted by length inside the
  chunk and packed into batches whose padded size stays under a token budget
  (:func:`iter_batches`, :class:`BatchRunner`); bf16 on CUDA, fp32 on CPU, ``torch.inference_mode``;
- on a CUDA out-of-memory error the budget is halved and the *same* batch is retried (never lost);
- truncation is explicit: the context is cut from the LEFT so the response survives; every text
  carries a ``truncated`` flag;
- a chunk is one transaction in the study, so a killed job loses at most one chunk and a rerun skips
  every text already scored by the same model run (``model_id``).

Input formats (``ScoreSettings.format``):

``pair``  ``tokenizer(context, response)``, the first sequence truncated from the left (as the SEAL
          paper scored hh-rlhf, which did not truncate at all).
``raw``   the whole transcript as one sequence, truncated from the left.
``chat``  ``tokenizer.apply_chat_template(transcript_to_messages(context, response))``, truncated
          from the left (a leading BOS token is kept).

Default by rule: ``chat`` when the tokenizer has a chat template and the model is a decoder, else
``pair``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import json
import math
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from .data import join_transcript, transcript_to_messages
from .errors import ModelError, RmtuiError
from .hashing import digest

FORMATS = ("pair", "raw", "chat")
ROLES = ("pre", "post", "other")
DTYPES = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cpu", "cuda")

Progress = Callable[[int, int], None]  # progress(n_done, n_total)
CUDA_TOKEN_BUDGET = 16384
CPU_TOKEN_BUDGET = 4096

# model types whose sequence classifier pools the last non-pad token (decoders)
_DECODER_TYPES = {
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2",
    "gemma3", "gemma3_text", "gpt2", "gpt_neo", "gpt_neox", "gptj", "phi", "phi3", "falcon", "opt",
    "bloom", "mpt", "starcoder2", "olmo", "olmo2", "stablelm", "persimmon", "cohere", "jamba",
    "nemotron", "internlm2", "deepseek_v2", "deepseek_v3", "granite", "glm", "glm4", "smollm3",
}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack")


# ---------------------------------------------------------------------------------------------
# settings and results


@dataclass
class ScoreSettings:
    device: str = "auto"        # auto | cpu | cuda
    dtype: str = "auto"         # auto (bf16 on cuda, fp32 on cpu) | bf16 | fp16 | fp32
    format: str | None = None   # pair | raw | chat ; None: chosen by rule
    max_length: int | None = None  # None: the model's max length
    token_budget: int | None = None  # padded tokens per batch; None: 16384 on CUDA, 4096 on CPU
    trust_remote_code: bool = False
    compile: bool = False       # torch.compile the model (pays on long GPU runs)
    chunk_size: int = 1024      # texts per length-sorted window and per committed chunk
    overlap: bool | None = None  # tokenize the next chunk in a thread; None: on CUDA only
    tokenize_threads: int | None = None  # threads that tokenize a chunk; None: min(8, cores)
    defer_sync: bool | None = None  # keep rewards on the device until a chunk ends; None: on CUDA
    first_token_top: bool = True  # BERT and DeBERTa-v2 classifiers: the last layer computes only the
                                  # first token, all the pooler reads (same rewards; a 3-layer BERT
                                  # runs ~1/4 faster)
    fused_attention: bool = True  # DeBERTa-v2/v3: position bias + SDPA in place of transformers'
                                  # eager disentangled attention (same rewards; analysis/fast_attention.py)
    pad_multiple: int | None = None  # pad each batch's length to a multiple of N; None: 8 on CUDA
                                     # (tensor-core and attention-bias alignment), 1 on CPU
    max_batch_size: int | None = None
    allow_untrained_head: bool = False  # accept a newly initialised classification head (benchmarks)
    oom_hook: Callable[[int], None] | None = field(default=None, repr=False, compare=False)
    simulate_oom_above: int | None = None  # test hook: padded batches above N tokens raise CUDA OOM

    def validate(self) -> None:
        if self.device not in DEVICES:
            raise ModelError(f"--device {self.device!r}: expected one of {', '.join(DEVICES)}", "Bad option")
        if self.dtype not in DTYPES:
            raise ModelError(f"--dtype {self.dtype!r}: expected one of {', '.join(DTYPES)}", "Bad option")
        if self.format is not None and self.format not in FORMATS:
            raise ModelError(f"--format {self.format!r}: expected one of {', '.join(FORMATS)}", "Bad option")
        if self.token_budget is not None and self.token_budget < 1:
            raise ModelError(f"--token-budget {self.token_budget}: must be at least 1", "Bad option")
        if self.max_length is not None and self.max_length < 4:
            raise ModelError(f"--max-length {self.max_length}: must be at least 4", "Bad option")
        if self.chunk_size < 1:
            raise ModelError(f"chunk_size {self.chunk_size}: must be at least 1", "Bad option")
        if self.pad_multiple is not None and self.pad_multiple < 1:
            raise ModelError(f"pad_multiple {self.pad_multiple}: must be at least 1", "Bad option")

    def record(self) -> dict[str, Any]:
        """JSON-able settings (hooks left out)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "oom_hook"}
        return d


@dataclass
class ScoreRunResult:
    model_id: str
    name: str
    role: str
    run_id: str
    n_texts: int = 0          # texts of the study's pairs
    n_scored: int = 0         # scored in this run
    n_skipped: int = 0        # already scored by this model run (cache)
    n_truncated: int = 0      # of the texts scored in this run
    seconds: float = 0.0
    texts_per_s: float = 0.0
    device: str = ""
    dtype: str = ""
    format: str = ""
    max_length: int = 0
    token_budget: int = 0     # the budget at the end (lower than asked after OOM back-off)
    n_oom: int = 0
    demoted: list[str] = field(default_factory=list)  # model ids whose role moved to 'other'
    invariance_max_abs_diff: float | None = None


# ---------------------------------------------------------------------------------------------
# batching (reused by the hf: featurizer)


def iter_batches(lengths: Sequence[int], token_budget: int, *, max_batch_size: int | None = None
                 ) -> Iterator[list[int]]:
    """Indices of ``lengths`` in batches, longest first, each batch's padded size under the budget.

    Padded size = ``len(batch) * max(lengths in batch)``. A text longer than the whole budget gets
    a batch of its own. Longest first, so an out-of-memory error shows up at the start.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    pos = 0
    while pos < len(order):
        n = _take(lengths, order, pos, token_budget, max_batch_size)
        yield [int(i) for i in order[pos:pos + n]]
        pos += n


def _take(lengths: np.ndarray, order: np.ndarray, pos: int, budget: int, max_batch: int | None) -> int:
    longest = max(int(lengths[order[pos]]), 1)
    n = max(1, budget // longest)
    if max_batch:
        n = min(n, max_batch)
    return min(n, len(order) - pos)


def is_oom(exc: BaseException) -> bool:
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except Exception:  # pragma: no cover
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class BatchRunner:
    """Run ``fn(indices)`` over length-sorted batches under a token budget, halving it on OOM.

    The budget persists across calls of :meth:`run` (a model that ran out of memory once keeps the
    smaller budget). A batch that hits OOM is split under the new budget and retried; only a single
    text that does not fit alone raises :class:`ModelError`.

    ``oom_hook(padded_tokens)`` is called before every batch and may raise
    ``torch.cuda.OutOfMemoryError`` (tests); ``simulate_oom_above`` does that for batches above N
    padded tokens.
    """

    def __init__(self, token_budget: int, *, max_batch_size: int | None = None,
                 oom_hook: Callable[[int], None] | None = None, simulate_oom_above: int | None = None,
                 on_oom: Callable[[int, int], None] | None = None) -> None:
        self.budget = int(token_budget)
        self.max_batch_size = max_batch_size
        self.oom_hook = oom_hook
        self.simulate_oom_above = simulate_oom_above
        self.on_oom = on_oom
        self.n_oom = 0

    def _check_hooks(self, padded: int) -> None:
        if self.oom_hook is not None:
            self.oom_hook(padded)
        if self.simulate_oom_above is not None and padded > self.simulate_oom_above:
            import torch

            raise torch.cuda.OutOfMemoryError(
                f"simulated CUDA out of memory: batch of {padded} padded tokens > {self.simulate_oom_above}")

    def run(self, lengths: Sequence[int], fn: Callable[[list[int]], Any]) -> Iterator[tuple[list[int], Any]]:
        lengths = np.asarray(lengths, dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        pos = 0
        while pos < len(order):
            n = _take(lengths, order, pos, self.budget, self.max_batch_size)
            batch = [int(i) for i in order[pos:pos + n]]
            padded = n * max(int(lengths[batch[0]]), 1)
            try:
                self._check_hooks(padded)
                out = fn(batch)
            except Exception as e:
                if not is_oom(e):
                    raise
                _free_cuda()
                self.n_oom += 1
                if n == 1:
                    raise ModelError(
                        f"out of memory on a single text of {int(lengths[batch[0]])} tokens (token budget "
                        f"{self.budget}); lower --max-length or use a GPU with more memory", "Out of memory",
                    ) from e
                self.budget = max(1, min(self.budget, padded) // 2)
                if self.on_oom:
                    self.on_oom(self.budget, padded)
                continue  # same position: the batch is rebuilt under the new budget
            yield batch, out
            pos += n


def _free_cuda() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover
        pass


# ---------------------------------------------------------------------------------------------
# loading


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda: no CUDA GPU is available to torch on this machine "
                         f"(torch {torch.__version__}); use --device cpu or auto", "No GPU")
    return device


def _resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "bf16" if device == "cuda" else "fp32"
    return dtype


def _torch_dtype(name: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def _split_spec(spec: str) -> tuple[str, str | None]:
    """``owner/name@rev`` -> (``owner/name``, ``rev``); local paths are never split."""
    if "@" in spec and not Path(spec).exists():
        base, rev = spec.rsplit("@", 1)
        if rev and "/" not in rev:
            return base, rev
    return spec, None


def _looks_like_path(spec: str) -> bool:
    return (spec.startswith(("/", "./", "../", "~")) or os.sep + os.sep in spec
            or spec.count("/") > 1 or spec.endswith("/") or spec in (".", ".."))


def folder_fingerprint(path: str | Path) -> str:
    """Content fingerprint of a model folder: small files (config, tokenizer) hashed whole; weight
    files by size, header and 16 sampled 64 KiB blocks. Stable across copies; changes when weights do.
    """
    path = Path(path)
    h = hashlib.blake2b(digest_size=12)
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        size = f.stat().st_size
        h.update(f"{rel}\x1f{size}\x1f".encode())
        if f.name.endswith(_WEIGHT_SUFFIXES):
            with open(f, "rb") as fh:
                h.update(fh.read(1 << 20))  # header (safetensors: JSON of names/shapes/offsets)
                step = max(size // 16, 1)
                for k in range(16):
                    fh.seek(min(k * step, max(size - 65536, 0)))
                    h.update(fh.read(65536))
                fh.seek(max(size - 65536, 0))
                h.update(fh.read(65536))
        elif size <= 64 << 20:
            h.update(f.read_bytes())
    return h.hexdigest()


def make_model_id(source: str, revision: str, fmt: str, max_length: int, dtype: str) -> str:
    return digest("model", source, revision, fmt, str(int(max_length)), dtype, size=8)


def _default_max_length(tok, config) -> int:
    cands = []
    mml = getattr(tok, "model_max_length", None)
    if isinstance(mml, int) and 0 < mml < 1_000_000:
        cands.append(mml)
    mpe = getattr(config, "max_position_embeddings", None)
    if isinstance(mpe, int) and mpe > 0:
        if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert", "longformer",
                                                 "bart", "mbart", "data2vec-text", "xlm-roberta-xl"):
            mpe -= 2
        if not getattr(config, "position_biased_input", True) and getattr(config, "relative_attention", False):
            mpe = max(mpe, 512)  # deberta-v2/v3: relative positions, 512 is the trained length
        cands.append(mpe)
    return int(min(cands)) if cands else 512


class RewardModel:
    """A loaded reward model. Build with :func:`load_reward_model`."""

    model_id: str

    def __init__(self) -> None:  # filled by load_reward_model
        self.spec = ""
        self.source = ""
        self.public_source = ""  # recorded in the study: embedded:pre rather than its cache folder
        self.revision = ""
        self.name = ""
        self.role: str | None = None
        self.settings = ScoreSettings()
        self.format = "pair"
        self.dtype = "fp32"
        self.device = "cpu"
        self.max_length = 512
        self.padding_side = "right"
        self.truncation_side = "left"
        self.is_decoder = False
        self.num_labels = 1
        self.reward_rule = "logits[:, 0]"
        self.head = "trained"
        self.model = None
        self.tokenizer = None
        self.runner: BatchRunner
        self._use_tt = False
        self._pos_ids = False
        self._bos_id: int | None = None
        self._first_token = False  # BERT fast path: see ScoreSettings.first_token_top
        self._fused_attention = False  # DeBERTa-v2 attention patched: see ScoreSettings.fused_attention
        self._first_token_layer = False  # DeBERTa-v2: last layer patched to the first token only
        self.model_id = ""

    # -- bookkeeping ---------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        """What the study's ``models`` table stores about this model run."""
        return {
            "model_id": self.model_id, "name": self.name, "path_or_hub_id": self.public_source,
            "revision": self.revision, "format": self.format, "dtype": self.dtype, "device": self.device,
            "max_length": self.max_length, "padding_side": self.padding_side,
            "truncation_side": self.truncation_side, "token_budget": self.settings.token_budget,
            "trust_remote_code": self.settings.trust_remote_code,
            "settings": {
                **self.settings.record(), "format": self.format, "dtype": self.dtype,
                "max_length": self.max_length, "num_labels": self.num_labels,
                "reward_rule": self.reward_rule, "is_decoder": self.is_decoder, "head": self.head,
                "first_token_top": self._first_token or self._first_token_layer,
                "fused_attention": self._fused_attention,
                "architecture": type(self.model).__name__ if self.model is not None else None,
                "pad_token_id": getattr(self.tokenizer, "pad_token_id", None),
                "transformers": _version("transformers"), "torch": _version("torch"),
            },
        }

    def __repr__(self) -> str:
        return (f"RewardModel({self.name!r}, id={self.model_id}, format={self.format}, dtype={self.dtype}, "
                f"device={self.device}, max_length={self.max_length})")

    # -- tokenization ----------------------------------------------------------------------------
    def encode(self, texts: pd.DataFrame) -> "Encoded":
        """Tokenize a text frame in this model's format, truncating from the left.

        Large frames are split across threads: the Rust tokenizer releases the GIL, so this scales
        with cores without the fork hazards of TOKENIZERS_PARALLELISM.
        """
        n = len(texts)
        workers = self._tokenize_workers(n)
        if workers <= 1:
            return self._encode_part(texts)
        bounds = np.linspace(0, n, workers + 1).astype(int)
        parts = [texts.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        with ThreadPoolExecutor(workers, thread_name_prefix="rmtui-tok") as ex:
            encs = list(ex.map(self._encode_part, parts))
        return Encoded([x for e in encs for x in e.ids],
                       None if encs[0].type_ids is None else [x for e in encs for x in e.type_ids],
                       np.concatenate([e.truncated for e in encs]))

    def _tokenize_workers(self, n: int) -> int:
        want = self.settings.tokenize_threads
        if want is None:
            want = min(8, os.cpu_count() or 1)
        return max(1, min(int(want), n // 128))

    def _encode_part(self, texts: pd.DataFrame) -> "Encoded":
        if self.format == "pair":
            return self._encode_pair(_col(texts, "context"), _col(texts, "response"))
        if self.format == "raw":
            return self._encode_single(_texts(texts), add_special=True)
        strings = [self.tokenizer.apply_chat_template(transcript_to_messages(c, r), tokenize=False)
                   for c, r in zip(_col(texts, "context"), _col(texts, "response"))]
        return self._encode_single(strings, add_special=False)

    def _encode_pair(self, ctx: list[str], resp: list[str]) -> "Encoded":
        """``tokenizer(context, response)``; a text over max_length loses the start of its context
        (then, if the response alone is too long, the start of the response), special tokens kept.
        Done on the token ids with the fast tokenizer's sequence ids: the same as re-encoding with
        ``truncation="only_first"`` (tested), without a second pass over the long texts."""
        tok, L = self.tokenizer, self.max_length
        enc = tok(ctx, resp, truncation=False, return_attention_mask=False,
                  return_token_type_ids=self._use_tt)
        ids = list(enc["input_ids"])
        tts = list(enc["token_type_ids"]) if self._use_tt else None
        truncated = np.zeros(len(ids), dtype=bool)
        fast = getattr(enc, "is_fast", False)
        for i, x in enumerate(ids):
            if len(x) <= L:
                continue
            truncated[i] = True
            if fast:
                keep = _left_truncate_pair(enc.sequence_ids(i), len(x) - L)
                if keep is not None:
                    ids[i] = [x[j] for j in keep]
                    if tts is not None:
                        tts[i] = [tts[i][j] for j in keep]
                    continue
            try:
                e = tok(ctx[i], resp[i], truncation="only_first", max_length=L,
                        return_attention_mask=False, return_token_type_ids=self._use_tt)
            except Exception:
                # the response alone is longer than max_length: drop the context, keep the
                # response's end (left truncation throughout)
                e = tok("", resp[i], truncation="only_second", max_length=L,
                        return_attention_mask=False, return_token_type_ids=self._use_tt)
            ids[i] = e["input_ids"]
            if tts is not None:
                tts[i] = e["token_type_ids"]
        return Encoded(ids, tts, truncated)

    def _encode_single(self, strings: list[str], *, add_special: bool) -> "Encoded":
        tok, L = self.tokenizer, self.max_length
        enc = tok(strings, truncation=False, add_special_tokens=add_special, return_attention_mask=False,
                  return_token_type_ids=self._use_tt)
        ids = list(enc["input_ids"])
        tts = list(enc["token_type_ids"]) if self._use_tt else None
        truncated = np.fromiter((len(x) > L for x in ids), dtype=bool, count=len(ids))
        long = np.flatnonzero(truncated).tolist()
        if add_special and long:  # one batched re-encode of the long texts, cut from the left
            e = tok([strings[i] for i in long], truncation=True, max_length=L, return_attention_mask=False,
                    return_token_type_ids=self._use_tt)
            for k, i in enumerate(long):
                ids[i] = e["input_ids"][k]
                if tts is not None:
                    tts[i] = e["token_type_ids"][k]
        elif long:  # chat: cut from the left by hand, keeping a leading BOS
            for i in long:
                x = ids[i]
                keep_bos = self._bos_id is not None and x[0] == self._bos_id
                ids[i] = ([x[0]] + list(x[-(L - 1):])) if keep_bos else list(x[-L:])
                if tts is not None:
                    tts[i] = tts[i][:1] + tts[i][-(L - 1):] if keep_bos else tts[i][-L:]
        return Encoded(ids, tts, truncated)

    # -- forward ---------------------------------------------------------------------------------
    def _forward(self, enc: "Encoded", idx: list[int], *, to_host: bool = True):
        """Rewards of ``enc``'s texts at ``idx``: a float64 array, or (``to_host=False``) the float32
        tensor still on the device, so the host can queue the next batch before this one finishes."""
        import torch

        seqs = [enc.ids[i] for i in idx]
        n, T = len(seqs), max(len(s) for s in seqs)
        m = self.settings.pad_multiple or (8 if self.device == "cuda" else 1)
        T = -(-T // m) * m
        pad = self.tokenizer.pad_token_id
        input_ids = np.full((n, T), pad, dtype=np.int64)
        mask = np.zeros((n, T), dtype=np.int64)
        tt = np.zeros((n, T), dtype=np.int64) if enc.type_ids is not None else None
        left = self.padding_side == "left"
        for r, (i, s) in enumerate(zip(idx, seqs)):
            k = len(s)
            sl = slice(T - k, T) if left else slice(0, k)
            input_ids[r, sl] = s
            mask[r, sl] = 1
            if tt is not None:
                tt[r, sl] = enc.type_ids[i]
        dev = self.device
        if dev == "cuda":  # pinned + non_blocking: the copy queues behind the running batch
            def put(a):
                return torch.from_numpy(a).pin_memory().to(dev, non_blocking=True)
        else:
            def put(a):
                return torch.from_numpy(a)
        inputs = {"input_ids": put(input_ids), "attention_mask": put(mask)}
        if tt is not None:
            inputs["token_type_ids"] = put(tt)
        if self._pos_ids and left:
            inputs["position_ids"] = put(np.clip(np.cumsum(mask, axis=1) - 1, 0, None))
        with torch.inference_mode():
            if self._first_token and self.settings.first_token_top:
                from .train import bert_logits

                logits = bert_logits(self.model, inputs["input_ids"], inputs.get("token_type_ids"),
                                     inputs["attention_mask"]).float()
            else:
                logits = self.model(**inputs).logits.float()
            if self.num_labels == 2:
                r = logits[:, 1] - logits[:, 0]
            else:
                r = logits[:, 0]
            if not to_host:
                return r
            return r.cpu().numpy().astype(np.float64)

    # -- scoring ---------------------------------------------------------------------------------
    def iter_score(self, texts: pd.DataFrame, progress: Progress | None = None,
                   chunk_size: int | None = None) -> Iterator[pd.DataFrame]:
        """Score a text frame chunk by chunk; yields DataFrame[text_id, reward, truncated, n_tokens].

        Each chunk is length-sorted and packed under the token budget. With ``overlap`` the next
        chunk is tokenized in a thread while the model runs on this one.
        """
        texts = _dedupe(texts)
        n_total = len(texts)
        cs = chunk_size or self.settings.chunk_size
        starts = list(range(0, n_total, cs))
        overlap = self.settings.overlap if self.settings.overlap is not None else self.device == "cuda"
        defer = self.settings.defer_sync if self.settings.defer_sync is not None else self.device == "cuda"
        pool = ThreadPoolExecutor(1, thread_name_prefix="rmtui-tokenize") if overlap and len(starts) > 1 else None
        done = 0
        if progress:
            progress(0, n_total)
        try:
            nxt = None
            for k, s in enumerate(starts):
                chunk = texts.iloc[s:s + cs]
                if nxt is not None:
                    enc = nxt.result()
                else:
                    enc = self.encode(chunk)
                nxt = None
                if pool is not None and k + 1 < len(starts):
                    nxt = pool.submit(self.encode, texts.iloc[starts[k + 1]:starts[k + 1] + cs])
                rewards = np.empty(len(chunk), dtype=np.float64)
                batches, outs = [], []  # deferred: device tensors, copied to the host once per chunk
                for batch, out in self.runner.run(enc.lengths, lambda b: self._forward(enc, b, to_host=not defer)):
                    batches.append(np.asarray(batch, dtype=np.int64))
                    outs.append(out)
                    done += len(batch)
                    if progress:
                        progress(done, n_total)
                if outs:
                    if defer:
                        import torch

                        values = torch.cat(outs).cpu().numpy().astype(np.float64)
                    else:
                        values = np.concatenate(outs)
                    rewards[np.concatenate(batches)] = values
                yield pd.DataFrame({
                    "text_id": chunk["text_id"].to_numpy(), "reward": rewards,
                    "truncated": enc.truncated, "n_tokens": enc.lengths.astype(np.int64),
                })
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def score_frame(self, texts: pd.DataFrame, progress: Progress | None = None) -> pd.DataFrame:
        """Score a text frame (``text_id, context, response[, text]``) -> DataFrame[text_id, reward,
        truncated, n_tokens], one row per distinct text_id, in the frame's order."""
        parts = list(self.iter_score(texts, progress))
        if not parts:
            return pd.DataFrame({"text_id": pd.Series(dtype=str), "reward": pd.Series(dtype=float),
                                 "truncated": pd.Series(dtype=bool), "n_tokens": pd.Series(dtype="int64")})
        return pd.concat(parts, ignore_index=True)

    def score_one_by_one(self, texts: pd.DataFrame) -> np.ndarray:
        """Each text in its own forward pass (no padding): the reference for batch invariance."""
        texts = _dedupe(texts)
        enc = self.encode(texts)
        return np.array([self._forward(enc, [i])[0] for i in range(len(texts))])


@dataclass
class Encoded:
    ids: list
    type_ids: list | None
    truncated: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))


def _left_truncate_pair(seq_ids: list, excess: int) -> list[int] | None:
    """Positions to keep when ``excess`` tokens must go from a pair encoding: the first ``excess``
    tokens of sequence 0 (the context), then, if it runs out, of sequence 1 (the response).
    Special tokens (sequence id None) always stay. None if the layout is not [.. 0 .. 1 ..]."""
    first = [j for j, s in enumerate(seq_ids) if s == 0]
    second = [j for j, s in enumerate(seq_ids) if s == 1]
    if not second:
        return None
    drop = set(first[:excess])
    rest = excess - len(drop)
    if rest > 0:
        if rest >= len(second):
            return None
        drop.update(second[:rest])
    return [j for j in range(len(seq_ids)) if j not in drop]


def _version(mod: str) -> str | None:
    try:
        return __import__(mod).__version__
    except Exception:  # pragma: no cover
        return None


def _col(df: pd.DataFrame, name: str) -> list[str]:
    if name not in df.columns:
        raise RmtuiError(f"text frame has no column {name!r} (columns: {', '.join(map(str, df.columns))})",
                         "Bad input")
    return ["" if v is None else str(v) for v in df[name].tolist()]


def _texts(df: pd.DataFrame) -> list[str]:
    if "text" in df.columns:
        return ["" if v is None else str(v) for v in df["text"].tolist()]
    return [join_transcript(c, r) for c, r in zip(_col(df, "context"), _col(df, "response"))]


def _dedupe(texts: pd.DataFrame) -> pd.DataFrame:
    if "text_id" not in texts.columns:
        raise RmtuiError("text frame has no column 'text_id'", "Bad input")
    if texts["text_id"].duplicated().any():
        texts = texts.drop_duplicates("text_id")
    return texts.reset_index(drop=True)


def _is_decoder(config, model) -> bool:
    if getattr(config, "is_decoder", False):
        return True
    if getattr(config, "model_type", "") in _DECODER_TYPES:
        return True
    # decoder sequence classifiers in transformers name their head `score` and pool the last token
    return model is not None and hasattr(model, "score") and not hasattr(model, "classifier")


def load_reward_model(spec: str, settings: ScoreSettings | None = None, *, name: str | None = None
                      ) -> RewardModel:
    """Load a sequence-classification RM from a local folder or a hub id (``owner/name[@rev]``).

    Raises :class:`ModelError` with a clear message: missing folder, hub id not reachable, not a
    sequence classifier, untrained head, CUDA asked for with no GPU.
    """
    settings = dataclasses.replace(settings) if settings else ScoreSettings()
    settings.validate()
    device = _resolve_device(settings.device)
    dtype = _resolve_dtype(settings.dtype, device)
    if settings.token_budget is None:
        # measured: on CPU large padded batches are slower than small ones (memory traffic);
        # on a GPU they are what makes it fast
        settings.token_budget = CUDA_TOKEN_BUDGET if device == "cuda" else CPU_TOKEN_BUDGET

    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover
        pass

    public_spec = None  # what the study records for specs that resolve to a local cache folder
    if str(spec).startswith("embedded:"):
        from .embedded import resolve_model_spec

        public_spec = str(spec)
        spec = resolve_model_spec(public_spec)
    source, revision = _split_spec(str(spec))
    path = Path(source).expanduser()
    is_local = path.exists()
    if not is_local and _looks_like_path(source):
        raise ModelError(f"{source}: no such model folder", "Model not found")
    if is_local:
        if not path.is_dir():
            raise ModelError(f"{source}: is a file; give the model folder (with config.json)", "Model not found")
        if not (path / "config.json").exists():
            raise ModelError(f"{source}: no config.json in this folder; not a transformers model folder",
                             "Model not found")
        source = str(path.resolve())
    kw: dict[str, Any] = {"trust_remote_code": settings.trust_remote_code}
    if revision and not is_local:
        kw["revision"] = revision
    try:
        config = AutoConfig.from_pretrained(source, **kw)
    except Exception as e:
        msg = str(e)
        if "trust_remote_code" in msg:
            raise ModelError(f"{source}: this model ships its own code; pass --trust-remote-code (or set "
                             "RMTUI_TRUST_REMOTE_CODE=1) only if you trust it", "Model needs remote code") from e
        if is_local:
            raise ModelError(f"{source}: cannot read config.json: {type(e).__name__}: {e}", "Model") from e
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        raise ModelError(
            f"{source}: not found locally and the hub is unreachable"
            + (" (HF_HUB_OFFLINE is set)" if offline else "")
            + f": {type(e).__name__}: {msg.splitlines()[0].rstrip('.') if msg else ''}. Give a local folder, or "
            "download it first on a machine with network (huggingface-cli download ...)",
            "Model not found",
        ) from e

    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

    mtype = getattr(config, "model_type", "")
    archs = list(getattr(config, "architectures", None) or [])
    has_auto_map = "AutoModelForSequenceClassification" in (getattr(config, "auto_map", None) or {})
    if mtype not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES and not (has_auto_map and settings.trust_remote_code):
        raise ModelError(
            f"{source}: not a sequence classifier: model type {mtype!r} (architectures: "
            f"{', '.join(archs) or 'none'}) has no sequence-classification head in transformers"
            + ("; it ships custom code, pass --trust-remote-code if you trust it" if has_auto_map else ""),
            "Not a reward model",
        )
    trained_head = not archs or any(a.endswith(("ForSequenceClassification", "ForRewardModel", "RewardModel")) for a in archs)
    if not trained_head and not settings.allow_untrained_head:
        raise ModelError(
            f"{source}: not a sequence classifier: its architectures are {', '.join(archs) or 'unknown'}, "
            "so a reward head would be newly initialised at random. Give a model trained as a "
            "sequence classifier (reward model)", "Not a reward model",
        )

    try:
        tok = AutoTokenizer.from_pretrained(source, **kw)
    except Exception as e:
        raise ModelError(f"{source}: cannot load its tokenizer: {type(e).__name__}: {e}", "Model") from e

    load_kw = dict(kw)
    load_kw[_dtype_kw()] = _torch_dtype(dtype)
    if not trained_head:
        load_kw["num_labels"] = 1
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            source, config=config if trained_head else None, output_loading_info=True, **load_kw)
    except Exception as e:
        raise ModelError(f"{source}: cannot load as a sequence classifier: {type(e).__name__}: {e}",
                         "Model") from e
    missing = sorted((info or {}).get("missing_keys", []) or [])
    if missing and not settings.allow_untrained_head:
        raise ModelError(
            f"{source}: not a sequence classifier: the checkpoint has no weights for "
            f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}; they would be initialised at "
            "random and the rewards would mean nothing", "Not a reward model")
    head_missing = missing

    rm = RewardModel()
    rm.spec = public_spec or str(spec)
    rm.source = source
    rm.public_source = public_spec or source
    rm.settings = settings
    rm.device = device
    rm.dtype = dtype
    rm.head = "trained" if not head_missing and trained_head else "untrained"
    rm.num_labels = int(getattr(model.config, "num_labels", 1))
    if rm.num_labels == 2:
        rm.reward_rule = "logits[:, 1] - logits[:, 0]"
    elif rm.num_labels == 1:
        rm.reward_rule = "logits[:, 0]"
    else:
        raise ModelError(f"{source}: has {rm.num_labels} labels; a reward model has 1 (or 2: reward = "
                         "logit[1] - logit[0])", "Not a reward model")
    if is_local:
        rm.revision = "folder:" + folder_fingerprint(path)
    else:
        rm.revision = str(getattr(config, "_commit_hash", None) or revision or "unknown")
    rm.name = name or (public_spec.replace(":", "-") if public_spec else
                       Path(source).name if is_local else source)
    rm.is_decoder = _is_decoder(config, model)

    # tokenizer: left truncation, padding side respected, pad token for decoders
    tok.truncation_side = "left"
    if tok.pad_token_id is None:
        if tok.eos_token_id is None:
            raise ModelError(f"{source}: its tokenizer has neither a pad nor an eos token; cannot batch",
                             "Model")
        tok.pad_token = tok.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id
    rm.padding_side = getattr(tok, "padding_side", "right") or "right"
    rm._use_tt = "token_type_ids" in getattr(tok, "model_input_names", [])
    rm._bos_id = tok.bos_token_id
    try:
        rm._pos_ids = "position_ids" in inspect.signature(model.forward).parameters and rm.is_decoder
    except (TypeError, ValueError):  # pragma: no cover
        rm._pos_ids = False

    has_template = bool(getattr(tok, "chat_template", None))
    fmt = settings.format or ("chat" if has_template and rm.is_decoder else "pair")
    if fmt == "chat" and not has_template:
        raise ModelError(f"{source}: --format chat needs a tokenizer with a chat_template; this one has none "
                         "(use pair or raw)", "Bad option")
    rm.format = fmt
    rm.max_length = int(settings.max_length or _default_max_length(tok, config))
    rm.tokenizer = tok

    model.eval()
    model.to(device)
    from .fast_attention import patch_deberta_v2_attention, patch_deberta_v2_first_token
    from .train import supports_first_token_forward

    rm._first_token = bool(settings.first_token_top and not settings.compile and rm.padding_side == "right"
                           and supports_first_token_forward(model))
    rm._fused_attention = settings.fused_attention and patch_deberta_v2_attention(model) > 0
    rm._first_token_layer = settings.first_token_top and patch_deberta_v2_first_token(model)
    if settings.compile:
        model = torch.compile(model, dynamic=True)
    rm.model = model
    rm.runner = BatchRunner(settings.token_budget, max_batch_size=settings.max_batch_size,
                            oom_hook=settings.oom_hook, simulate_oom_above=settings.simulate_oom_above)
    rm.model_id = make_model_id(rm.public_source, rm.revision, rm.format, rm.max_length, rm.dtype)
    return rm


def _dtype_kw() -> str:
    try:
        import transformers

        major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
        return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    except Exception:  # pragma: no cover
        return "dtype"


# ---------------------------------------------------------------------------------------------
# studies


def check_invariance(model: RewardModel, texts: pd.DataFrame) -> float:
    """Max |reward batched - reward one text per forward| over ``texts`` (fp32 CPU: < 1e-4)."""
    texts = _dedupe(texts)
    batched = model.score_frame(texts).set_index("text_id")["reward"].reindex(texts["text_id"]).to_numpy()
    single = model.score_one_by_one(texts)
    return float(np.max(np.abs(batched - single))) if len(texts) else 0.0


def score_study(study, spec: str | RewardModel, role: str, *, name: str | None = None,
                settings: ScoreSettings | None = None, limit: int | None = None,
                progress: Progress | None = None, check_invariance_n: int = 0,
                on_commit: Callable[[int, int], None] | None = None) -> ScoreRunResult:
    """Score every text of the study's pairs not yet scored by this model run.

    Chunks of ``settings.chunk_size`` texts are committed one transaction each; a rerun after a
    crash or kill skips what was committed. ``role`` 'pre' or 'post' moves a previous model of the
    same role to 'other' (a study has one pre-D and one post-D RM). ``on_commit(n_committed,
    n_pending)`` is called after every committed chunk; ``progress(n_done, n_pending)`` per batch.
    """
    from .store import scores as store

    if role not in ROLES:
        raise RmtuiError(f"--role {role!r}: expected one of {', '.join(ROLES)}", "Bad option")
    rm = spec if isinstance(spec, RewardModel) else load_reward_model(spec, settings, name=name)
    if name:
        rm.name = name
    rm.role = role
    demoted = store.register_model(study, rm.record(), role)
    n_texts = store.n_texts(study)
    res = ScoreRunResult(model_id=rm.model_id, name=rm.name, role=role, run_id=uuid.uuid4().hex[:12],
                         n_texts=n_texts, device=rm.device, dtype=rm.dtype, format=rm.format,
                         max_length=rm.max_length, demoted=demoted)
    if check_invariance_n:
        sample = store.sample_texts(study, check_invariance_n)
        res.invariance_max_abs_diff = check_invariance(rm, sample)
    pending = store.pending_texts(study, rm.model_id)
    res.n_skipped = n_texts - len(pending)
    if limit is not None:
        pending = pending.head(max(int(limit), 0))
    run_settings = {**rm.record()["settings"], "limit": limit,
                    "invariance_max_abs_diff": res.invariance_max_abs_diff}
    store.start_run(study, res.run_id, rm.model_id, rm.device, run_settings)
    t0 = time.perf_counter()
    try:
        for part in rm.iter_score(pending, progress):
            store.add_scores(study, rm.model_id, part)
            res.n_scored += len(part)
            res.n_truncated += int(part["truncated"].sum())
            if on_commit:
                on_commit(res.n_scored, len(pending))
    finally:
        res.seconds = time.perf_counter() - t0
        res.texts_per_s = res.n_scored / res.seconds if res.seconds > 0 else 0.0
        res.token_budget = rm.runner.budget
        res.n_oom = rm.runner.n_oom
        store.finish_run(study, res.run_id, res.n_scored, res.n_skipped, res.n_truncated, res.texts_per_s,
                         {**run_settings, "final_token_budget": res.token_budget, "n_oom": res.n_oom})
    return res


def study_models(study) -> pd.DataFrame:
    """The study's ``models`` table (model_id, name, role, path_or_hub_id, revision, format, ...)."""
    from .store import scores as store

    return store.models_frame(study)


def load_study_models(study, device: str = "auto", *, roles: Iterable[str] | None = None,
                      trust_remote_code: bool | None = None) -> list[RewardModel]:
    """Reload every RM of the study (pre, post, then others) with its recorded settings.

    The format, max length and dtype are those recorded, so rewards land under the same model_id.
    Raises :class:`ModelError` when a model folder changed since it was scored.

    Trust is never persisted as consent: ``models.trust_remote_code`` only records that a model ran
    its repository's code when it was scored. Loading it again needs consent given to *this* command:
    ``trust_remote_code=True`` (its ``--trust-remote-code``), or, when None, ``RMTUI_TRUST_REMOTE_CODE=1``;
    without it :class:`ModelError` names the model and the flag and nothing of the folder runs.
    """
    if trust_remote_code is None:
        trust_remote_code = os.environ.get("RMTUI_TRUST_REMOTE_CODE", "").strip().lower() in ("1", "true", "yes")
    models = study_models(study)
    if roles is not None:
        models = models[models["role"].isin(list(roles))]
    out = []
    for row in models.itertuples(index=False):
        rec = json.loads(row.settings or "{}")
        needs_code = not pd.isna(row.trust_remote_code) and bool(row.trust_remote_code)
        if needs_code and not trust_remote_code:
            raise ModelError(
                f"{row.name} ({row.path_or_hub_id}): this model runs its own code (it was scored with "
                "--trust-remote-code); rmtui does not reuse that consent: pass --trust-remote-code to this "
                "command, or set RMTUI_TRUST_REMOTE_CODE=1, only if you trust it", "Model needs remote code")
        s = ScoreSettings(
            device=device, dtype=row.dtype or "auto", format=row.format, max_length=row.max_length,
            token_budget=int(rec.get("token_budget") or row.token_budget or 0) or None,
            trust_remote_code=needs_code,
            allow_untrained_head=rec.get("head") == "untrained",
        )
        spec = row.path_or_hub_id
        if row.revision and not str(row.revision).startswith("folder:") and row.revision != "unknown":
            spec = f"{spec}@{row.revision}"
        rm = load_reward_model(spec, s, name=row.name)
        rm.role = row.role
        if rm.model_id != row.model_id:
            raise ModelError(
                f"{row.path_or_hub_id}: the model changed since it was scored as {row.name!r} "
                f"(recorded revision {row.revision}, now {rm.revision}); score it again with rmtui score",
                "Model changed")
        out.append(rm)
    return out


def rescore(study, texts: pd.DataFrame, models: list[RewardModel] | None = None) -> pd.DataFrame:
    """Score texts with the study's models, skipping text_ids already in ``scores``, store the new
    rewards and return DataFrame[model_id, role, text_id, reward] for every given text."""
    from .store import scores as store

    texts = _dedupe(texts)
    if "text" not in texts.columns:
        texts = texts.assign(text=[join_transcript(c, r) for c, r in zip(texts["context"], texts["response"])])
    if models is None:
        models = load_study_models(study)
    frames = []
    for rm in models:
        cached = store.get_scores(study, rm.model_id, texts["text_id"].tolist())
        todo = texts[~texts["text_id"].isin(set(cached["text_id"]))]
        if len(todo):
            new = rm.score_frame(todo)
            store.add_scores(study, rm.model_id, new)
            cached = pd.concat([cached[["text_id", "reward"]], new[["text_id", "reward"]]], ignore_index=True)
        f = texts[["text_id"]].merge(cached[["text_id", "reward"]], on="text_id", how="left")
        f.insert(0, "role", rm.role)
        f.insert(0, "model_id", rm.model_id)
        frames.append(f)
    if not frames:
        return pd.DataFrame(columns=["model_id", "role", "text_id", "reward"])
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# benchmarks (``rmtui bench scoring`` and benchmarks/bench_scoring.py)

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
    vocab = Path(__file__).resolve().parent.parent / "sample_data" / "tokenizers" / "bert-base-uncased-vocab.txt"
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


SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data" / "hh-rlhf"


def sample_texts(path: str | Path | None = None, n: int = 256, *, seed: int = 0) -> pd.DataFrame:
    """A text frame (both texts of each pair) for benchmarks.

    ``path`` None: the first pairs of sample_data's harmless-base; ``"all"``: pairs drawn at random
    (seeded) from all four sample_data hh-rlhf subsets, i.e. hh-rlhf's own length mix; else a file.
    """
    from .data import Pair, ReadOptions, read_pairs
    from .hashing import text_id

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
    from .fast_attention import unpatched

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
