"""Train a small reward model with a Bradley-Terry loss (``rmtui train`` and the embedded models).

Why a short loop of our own and not TRL's ``RewardTrainer``:

- TRL drops pairs longer than ``max_length`` instead of truncating them, and it truncates from the
  right; hh-rlhf's chosen and rejected differ only at the end, so we truncate the *context* from the
  left (``tokenizer.truncation_side = "left"``) and keep every pair.
- On CPUs the cost is the frozen bottom of the encoder. For BERT-family models this loop runs the
  frozen layers once per distinct text, keeps their output, and trains only the top ``K`` layers,
  the pooler and the head on it (epochs after the first cost only the top layers). TRL recomputes
  the whole network every step.
- No extra dependency (TRL is not installed with rmtui).

Input format ``pair``: ``tokenizer(context, response)``, the SEAL paper's format, so the saved model
scores with ``AutoTokenizer`` + ``AutoModelForSequenceClassification`` exactly as it was trained.

Held-out pairs (analysis/models/train_pairs.py): :func:`~analysis.models.train_pairs.heldout_pairs` picks a seeded
fraction by hashing ``seed`` and the pair's id, so a pair's status never depends on which other pairs
are present. The saved model folder records the settings, the per-subset held-out accuracy and the
keys of every in-sample pair (``rmtui_trained_pairs.txt.gz``), so a study can later mark which of its
pairs the model never saw.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from analysis.errors import InputError, ModelError
from analysis.models.base import load_base
from analysis.models.bert import bert_bottom, bert_top
from analysis.models.train_pairs import TRAINED_PAIRS, add_text_keys, mark_split, write_trained_pairs

Progress = Callable[[str, int, int], None]  # (stage, done, total)

TRAIN_META = "rmtui_train.json"


@dataclass
class TrainSettings:
    epochs: float = 1.0
    lr: float = 1e-4
    batch_size: int = 16          # pairs per step (two texts each)
    max_length: int = 256         # tokens per text; the context is cut from the left
    train_layers: int = 1         # top encoder layers trained (with pooler and head); -1: all
    keep_layers: int | None = None  # keep only the bottom N encoder layers of the base (BERT-like)
    seed: int = 0
    heldout_frac: float = 0.2
    weight_decay: float = 0.01
    warmup: float = 0.05
    eval_batch_tokens: int = 8192
    cache_dtype: str = "float16"  # dtype of the cached frozen-layer outputs

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# models


def _is_bert(model) -> bool:
    base = getattr(model, "base_model", None)
    return (getattr(model.config, "model_type", None) == "bert" and hasattr(base, "encoder")
            and hasattr(base, "embeddings") and hasattr(model, "classifier"))


class Encoder:
    """Tokenizes distinct texts once: key -> (input_ids, token_type_ids)."""

    def __init__(self, tok, max_length: int):
        self.tok = tok
        self.max_length = max_length
        self.ids: dict[str, np.ndarray] = {}
        self.types: dict[str, np.ndarray] = {}
        self.n_truncated = 0

    def add(self, keys: Sequence[str], contexts: Sequence[str], responses: Sequence[str]) -> None:
        todo = [(k, c, r) for k, c, r in zip(keys, contexts, responses) if k not in self.ids]
        seen: set[str] = set()
        todo = [t for t in todo if not (t[0] in seen or seen.add(t[0]))]
        for i in range(0, len(todo), 512):
            chunk = todo[i:i + 512]
            enc = self.tok([c if c else " " for _, c, _ in chunk], [r for _, _, r in chunk],
                           truncation="longest_first", max_length=self.max_length,
                           return_overflowing_tokens=False)
            full = self.tok([c if c else " " for _, c, _ in chunk], [r for _, _, r in chunk], truncation=False)
            tt = enc.get("token_type_ids")
            for j, (k, _, _) in enumerate(chunk):
                self.ids[k] = np.asarray(enc["input_ids"][j], dtype=np.int64)
                self.types[k] = np.asarray(tt[j] if tt is not None else [0] * len(enc["input_ids"][j]), dtype=np.int64)
                if len(full["input_ids"][j]) > self.max_length:
                    self.n_truncated += 1

    def batch(self, keys: Sequence[str]):
        import torch

        n = max(len(self.ids[k]) for k in keys)
        pad = self.tok.pad_token_id or 0
        ids = torch.full((len(keys), n), pad, dtype=torch.long)
        types = torch.zeros((len(keys), n), dtype=torch.long)
        mask = torch.zeros((len(keys), n), dtype=torch.long)
        for i, k in enumerate(keys):
            L = len(self.ids[k])
            ids[i, :L] = torch.from_numpy(self.ids[k])
            types[i, :L] = torch.from_numpy(self.types[k])
            mask[i, :L] = 1
        return ids, types, mask

    def length(self, key: str) -> int:
        return len(self.ids[key])


class RewardNet:
    """A model split into a frozen bottom and a trained top (BERT-like), or whole (any other)."""

    def __init__(self, model, train_layers: int):
        self.model = model
        self.split = _is_bert(model)
        n = model.config.num_hidden_layers if self.split else None
        if self.split:
            k = n if train_layers < 0 else min(train_layers, n)
            self.n_frozen = n - k
        else:
            self.n_frozen = 0
        self._freeze(train_layers)

    def _freeze(self, train_layers: int) -> None:
        model = self.model
        if train_layers < 0:
            for p in model.parameters():
                p.requires_grad_(True)
            return
        for p in model.parameters():
            p.requires_grad_(False)
        if self.split:
            base = model.base_model
            for layer in base.encoder.layer[self.n_frozen:]:
                for p in layer.parameters():
                    p.requires_grad_(True)
            if getattr(base, "pooler", None) is not None:
                for p in base.pooler.parameters():
                    p.requires_grad_(True)
            for p in model.classifier.parameters():
                p.requires_grad_(True)
        else:
            # generic: unfreeze the head and the last `train_layers` layer-like blocks we can find
            layers = _find_layers(model)
            for layer in (layers[-train_layers:] if train_layers and layers else []):
                for p in layer.parameters():
                    p.requires_grad_(True)
            for name, mod in model.named_children():
                if name in ("classifier", "score", "pooler"):
                    for p in mod.parameters():
                        p.requires_grad_(True)

    def trainable(self) -> list:
        return [p for p in self.model.parameters() if p.requires_grad]

    def trainable_state(self) -> dict:
        names = {id(p): n for n, p in self.model.named_parameters()}
        return {names[id(p)]: p for p in self.trainable()}

    @property
    def caches(self) -> bool:
        return self.split and self.n_frozen > 0

    # -- BERT split forward ------------------------------------------------------------------------
    def bottom(self, ids, types, mask):
        return bert_bottom(self.model, self.n_frozen, ids, types, mask)

    def top(self, h, mask):
        """Trained layers on cached bottom output -> rewards (see :func:`bert_top`)."""
        return bert_top(self.model, self.n_frozen, h, mask).squeeze(-1)

    def full(self, ids, types, mask):
        out = self.model(input_ids=ids, attention_mask=mask,
                         **({"token_type_ids": types} if "token_type_ids" in _forward_args(self.model) else {}))
        return out.logits.squeeze(-1)

    def rewards(self, enc: "Encoder", cache: "FeatureCache | None", keys: Sequence[str]):
        """Rewards of ``keys``: the top layers on the cached bottom output, or the full model."""
        if cache is not None:
            h, mask = cache.batch(keys)
            return self.top(h, mask)
        return self.full(*enc.batch(keys))


def _forward_args(model) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


def _find_layers(model) -> list:
    import torch.nn as nn

    best: list = []
    for mod in model.modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > len(best):
            best = list(mod)
    return best


class FeatureCache:
    """Outputs of the frozen bottom layers, one unpadded tensor per distinct text."""

    def __init__(self, net: RewardNet, enc: Encoder, dtype: str = "float16"):
        import torch

        self.net = net
        self.enc = enc
        self.dtype = getattr(torch, dtype)
        self.h: dict[str, object] = {}

    def fill(self, keys: Sequence[str], token_budget: int, progress: Progress | None = None,
             stage: str = "frozen layers") -> None:
        import torch

        todo = sorted({k for k in keys if k not in self.h}, key=self.enc.length)
        done = 0
        self.net.model.eval()
        with torch.inference_mode():
            for batch in _length_batches(todo, self.enc.length, token_budget):
                ids, types, mask = self.enc.batch(batch)
                out = self.net.bottom(ids, types, mask)
                for i, k in enumerate(batch):
                    self.h[k] = out[i, : self.enc.length(k)].to(self.dtype).clone()
                done += len(batch)
                if progress:
                    progress(stage, done, len(todo))

    def batch(self, keys: Sequence[str]):
        import torch

        n = max(self.enc.length(k) for k in keys)
        hidden = self.h[keys[0]].shape[-1]
        h = torch.zeros((len(keys), n, hidden), dtype=torch.float32)
        mask = torch.zeros((len(keys), n), dtype=torch.long)
        for i, k in enumerate(keys):
            t = self.h[k]
            h[i, : t.shape[0]] = t.float()
            mask[i, : t.shape[0]] = 1
        return h, mask


def _length_batches(keys: Sequence[str], length, token_budget: int) -> list[list[str]]:
    batches, cur, cur_max = [], [], 0
    for k in keys:
        L = length(k)
        if cur and max(cur_max, L) * (len(cur) + 1) > token_budget:
            batches.append(cur)
            cur, cur_max = [], 0
        cur.append(k)
        cur_max = max(cur_max, L)
    if cur:
        batches.append(cur)
    return batches


# ---------------------------------------------------------------------------------------------
# train and evaluate


@dataclass
class PhaseStats:
    name: str
    n_pairs: int
    n_skipped_identical: int
    steps: int
    seconds: float
    final_loss: float
    mean_loss: float


def train_phase(net: RewardNet, enc: Encoder, cache: FeatureCache | None, frame: pd.DataFrame,
                settings: TrainSettings, *, name: str = "train", progress: Progress | None = None) -> PhaseStats:
    """Bradley-Terry training: loss = -log sigmoid(r_chosen - r_rejected), identical pairs skipped."""
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    usable = frame[~frame["identical"].astype(bool) & (frame["chosen_key"] != frame["rejected_key"])]
    n_skipped = len(frame) - len(usable)
    pairs = list(zip(usable["chosen_key"], usable["rejected_key"]))
    if not pairs:
        raise InputError(f"{name}: no usable training pairs (all identical or none selected)", "No training data")
    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    bs = max(1, settings.batch_size)
    epochs = max(settings.epochs, 0.0)
    steps_per_epoch = math.ceil(len(pairs) / bs)
    total_steps = max(1, int(round(steps_per_epoch * epochs)))
    params = net.trainable()
    if not params:
        raise ModelError("nothing to train: no parameter is trainable")
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    warm = max(1, int(total_steps * settings.warmup))

    def lr_factor(s: int) -> float:  # linear warm-up, then linear decay to zero
        if s < warm:
            return (s + 1) / warm
        return max(0.0, (total_steps - s) / max(1, total_steps - warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)

    def plen(p):
        return max(enc.length(p[0]), enc.length(p[1]))

    batches: list[list[tuple[str, str]]] = []
    while len(batches) < total_steps:
        order = pairs[:]
        rng.shuffle(order)
        epoch_batches = []
        chunk = bs * 50  # sort within chunks so a batch holds texts of similar length
        for i in range(0, len(order), chunk):
            part = sorted(order[i:i + chunk], key=plen)
            epoch_batches += [part[j:j + bs] for j in range(0, len(part), bs)]
        rng.shuffle(epoch_batches)
        batches += epoch_batches
    batches = batches[:total_steps]

    net.model.train()
    losses: list[float] = []
    for step, batch in enumerate(batches, start=1):
        rewards = net.rewards(enc, cache, [c for c, _ in batch] + [r for _, r in batch])
        rc, rr = rewards[: len(batch)], rewards[len(batch):]
        loss = -F.logsigmoid(rc - rr).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if progress:
            progress(name, step, total_steps)
    net.model.eval()
    tail = losses[-max(1, len(losses) // 10):]
    return PhaseStats(name, len(pairs), n_skipped, total_steps, time.perf_counter() - t0,
                      float(np.mean(tail)), float(np.mean(losses)))


def text_rewards(net: RewardNet, enc: Encoder, keys: Sequence[str], *, cache: FeatureCache | None = None,
                 token_budget: int = 8192, progress: Progress | None = None, stage: str = "score") -> dict[str, float]:
    """Rewards of distinct texts (batched by length, inference mode)."""
    import torch

    todo = sorted(set(keys), key=enc.length)
    out: dict[str, float] = {}
    net.model.eval()
    done = 0
    with torch.inference_mode():
        for batch in _length_batches(todo, enc.length, token_budget):
            r = net.rewards(enc, cache, batch)
            out.update(zip(batch, r.float().tolist()))
            done += len(batch)
            if progress:
                progress(stage, done, len(todo))
    return out


def pairwise_accuracy(frame: pd.DataFrame, rewards: dict[str, float]) -> pd.DataFrame:
    """Per-subset accuracy (r_chosen > r_rejected) over non-identical pairs, plus an ``all`` row.

    Columns: subset, n, accuracy, ties. Ties (equal rewards) count as not agreeing and are reported.
    """
    f = frame[~frame["identical"].astype(bool)].copy()
    f["rc"] = f["chosen_key"].map(rewards)
    f["rr"] = f["rejected_key"].map(rewards)
    f = f.dropna(subset=["rc", "rr"])
    f["agree"] = f["rc"] > f["rr"]
    f["tie"] = f["rc"] == f["rr"]
    rows = []
    for sub, g in sorted(f.groupby("subset"), key=lambda x: x[0]):
        rows.append((sub, len(g), float(g["agree"].mean()), int(g["tie"].sum())))
    if len(f):
        rows.append(("all", len(f), float(f["agree"].mean()), int(f["tie"].sum())))
    return pd.DataFrame(rows, columns=["subset", "n", "accuracy", "ties"])


def round_trainable_to_fp16(net: RewardNet) -> None:
    """Round the trained weights to fp16 and back, so that what we evaluate is what we ship."""
    import torch

    with torch.no_grad():
        for p in net.trainable():
            p.copy_(p.to(torch.float16).to(torch.float32))


# ---------------------------------------------------------------------------------------------
# the `rmtui train` job


@dataclass
class TrainResult:
    out: Path
    base: str
    settings: TrainSettings
    n_train: int
    n_heldout: int
    accuracy: pd.DataFrame          # held-out accuracy of the trained model per subset
    base_accuracy: pd.DataFrame | None
    phase: PhaseStats
    seconds: float
    n_truncated: int
    heldout_ids: list[str] = field(default_factory=list)


def train(base: str, out: str | Path, frame: pd.DataFrame, settings: TrainSettings | None = None, *,
          extra_heldout: Iterable[str] = (), eval_base: bool = True, progress: Progress | None = None,
          overwrite: bool = False) -> TrainResult:
    """Train ``base`` on the in-sample pairs of ``frame``, evaluate on the held-out ones, save to ``out``.

    ``frame``: columns of :data:`analysis.models.train_pairs.PAIR_COLUMNS`. The saved folder loads with
    ``AutoModelForSequenceClassification.from_pretrained(out)`` and ``AutoTokenizer.from_pretrained(out)``.
    """
    import torch

    settings = settings or TrainSettings()
    t0 = time.perf_counter()
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out}: the folder exists and is not empty (use --overwrite)", "Output exists")
    if len(frame) == 0:
        raise InputError("no pairs to train on", "No training data")
    frame = mark_split(add_text_keys(frame), settings.seed, settings.heldout_frac, extra_heldout)
    train_f = frame[~frame["heldout"]]
    held_f = frame[frame["heldout"]]
    torch.manual_seed(settings.seed)
    model, tok = load_base(base, settings)
    net = RewardNet(model, settings.train_layers)
    enc = Encoder(tok, settings.max_length)
    enc.add(list(frame["chosen_key"]) + list(frame["rejected_key"]),
            list(frame["chosen_context"]) + list(frame["rejected_context"]),
            list(frame["chosen_response"]) + list(frame["rejected_response"]))
    cache = None
    if net.caches:
        cache = FeatureCache(net, enc, settings.cache_dtype)
        cache.fill(list(train_f["chosen_key"]) + list(train_f["rejected_key"]), settings.eval_batch_tokens, progress)
    held_keys = list(held_f["chosen_key"]) + list(held_f["rejected_key"])
    base_acc = None
    if eval_base and len(held_f):
        r0 = text_rewards(net, enc, held_keys, token_budget=settings.eval_batch_tokens, progress=progress,
                          stage="score held-out (base)")
        base_acc = pairwise_accuracy(held_f, r0)
    phase = train_phase(net, enc, cache, train_f, settings, name="train", progress=progress)
    acc = pd.DataFrame(columns=["subset", "n", "accuracy", "ties"])
    if len(held_f):
        r1 = text_rewards(net, enc, held_keys, token_budget=settings.eval_batch_tokens, progress=progress,
                          stage="score held-out")
        acc = pairwise_accuracy(held_f, r1)
    res = TrainResult(out=out, base=base, settings=settings, n_train=len(train_f), n_heldout=len(held_f),
                      accuracy=acc, base_accuracy=base_acc, phase=phase, seconds=time.perf_counter() - t0,
                      n_truncated=enc.n_truncated, heldout_ids=list(held_f["pair_id"]))
    tok.model_max_length = settings.max_length  # score the way it was trained: truncation=True cuts here
    save_model(net.model, tok, out, meta=_meta(res), trained=train_f)
    return res


def _meta(res: TrainResult) -> dict:
    return {
        "rmtui": "train",
        "base": res.base,
        "format": "pair",
        "truncation_side": "left",
        "settings": res.settings.as_dict(),
        "n_train_pairs": res.n_train,
        "n_heldout_pairs": res.n_heldout,
        "n_texts_truncated": res.n_truncated,
        "heldout_accuracy": res.accuracy.to_dict(orient="records"),
        "base_heldout_accuracy": None if res.base_accuracy is None else res.base_accuracy.to_dict(orient="records"),
        "train": asdict(res.phase),
        "seconds": round(res.seconds, 1),
    }


def save_model(model, tok, out: str | Path, *, meta: dict | None = None, trained: pd.DataFrame | None = None) -> Path:
    """Save a standard HF folder (+ our metadata and the in-sample pair keys)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.config.architectures = [type(model).__name__]
    model.save_pretrained(out)
    tok.truncation_side = "left"
    tok.save_pretrained(out)
    if meta is not None:
        (out / TRAIN_META).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    if trained is not None:
        write_trained_pairs(out / TRAINED_PAIRS, trained)
    return out
