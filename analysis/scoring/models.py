"""A loaded reward model: tokenization in the study's formats (left truncation) and the batched
forward pass. Built by :func:`analysis.scoring.loading.load_reward_model`."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd

from analysis.datasets.readers import join_transcript, transcript_to_messages
from analysis.errors import RmtuiError
from analysis.scoring.batching import BatchRunner
from analysis.scoring.settings import Progress, ScoreSettings

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
        self.architecture: str | None = None  # the model class (also for a driver's weightless copy)
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
                "architecture": self.architecture or (type(self.model).__name__ if self.model is not None else None),
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
                from analysis.models.bert import bert_logits

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
