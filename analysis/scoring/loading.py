"""Loading a reward model: local folder or hub id, checks with clear errors, the model id
(a hash of source, revision or folder fingerprint, format, max length and dtype)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import os
from pathlib import Path
from typing import Any

from analysis.errors import ModelError
from analysis.hashing import digest
from analysis.scoring.batching import BatchRunner
from analysis.scoring.models import RewardModel
from analysis.scoring.settings import CPU_TOKEN_BUDGET, CUDA_TOKEN_BUDGET, ScoreSettings

# model types whose sequence classifier pools the last non-pad token (decoders)
_DECODER_TYPES = {
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2",
    "gemma3", "gemma3_text", "gpt2", "gpt_neo", "gpt_neox", "gptj", "phi", "phi3", "falcon", "opt",
    "bloom", "mpt", "starcoder2", "olmo", "olmo2", "stablelm", "persimmon", "cohere", "jamba",
    "nemotron", "internlm2", "deepseek_v2", "deepseek_v3", "granite", "glm", "glm4", "smollm3",
}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack")


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


def _is_decoder(config, model) -> bool:
    if getattr(config, "is_decoder", False):
        return True
    if getattr(config, "model_type", "") in _DECODER_TYPES:
        return True
    # decoder sequence classifiers in transformers name their head `score` and pool the last token
    return model is not None and hasattr(model, "score") and not hasattr(model, "classifier")


def load_reward_model(spec: str, settings: ScoreSettings | None = None, *, name: str | None = None,
                      weights: bool = True) -> RewardModel:
    """Load a sequence-classification RM from a local folder or a hub id (``owner/name[@rev]``).

    Raises :class:`ModelError` with a clear message: missing folder, hub id not reachable, not a
    sequence classifier, untrained head, CUDA asked for with no GPU.

    ``weights=False``: config and tokenizer only, the model built on the meta device, so a driver
    learns the model_id, format and max length that its workers will load (Ray engine, served
    RM), without the weights and without a GPU of its own (``device`` "cuda" is then taken as
    asked). Such a model cannot score.
    """
    settings = dataclasses.replace(settings) if settings else ScoreSettings()
    settings.validate()
    device = _resolve_device(settings.device) if weights or settings.device == "auto" else settings.device
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
        from analysis.models.embedded import resolve_model_spec

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
        if weights:
            model, info = AutoModelForSequenceClassification.from_pretrained(
                source, config=config if trained_head else None, output_loading_info=True, **load_kw)
        else:  # the architecture only: which head, which forward arguments
            cfg = config
            if not trained_head:
                cfg = copy.deepcopy(config)
                cfg.num_labels = 1
            with torch.device("meta"):
                model = AutoModelForSequenceClassification.from_config(
                    cfg, trust_remote_code=settings.trust_remote_code)
            info = {}
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

    rm.runner = BatchRunner(settings.token_budget, max_batch_size=settings.max_batch_size,
                            oom_hook=settings.oom_hook, simulate_oom_above=settings.simulate_oom_above)
    rm.model_id = make_model_id(rm.public_source, rm.revision, rm.format, rm.max_length, rm.dtype)
    if not weights:
        rm.architecture = type(model).__name__
        return rm
    return attach_model(rm, model)


def attach_model(rm: RewardModel, model, settings: ScoreSettings | None = None) -> RewardModel:
    """Give ``rm`` (configured by :func:`load_reward_model`, e.g. with ``weights=False``) its module:
    eval mode on ``rm.device``, the DeBERTa-v2 fused attention and first-token paths as ``settings``
    (default ``rm.settings``) ask (the attention put back to transformers' own when they do not, so
    one module can serve rows of a benchmark in turn), then ``torch.compile``. Returns ``rm``."""
    import torch

    from analysis.models.bert import supports_first_token_forward
    from analysis.models.deberta_attention import (fused_attention_modules, patch_deberta_v2_attention,
                                                   patch_deberta_v2_first_token, restore_deberta_v2_attention)

    settings = settings or rm.settings
    rm.settings = settings
    model.eval()
    model.to(rm.device)
    rm._first_token = bool(settings.first_token_top and not settings.compile and rm.padding_side == "right"
                           and supports_first_token_forward(model))
    if settings.fused_attention:
        patch_deberta_v2_attention(model)
    else:
        restore_deberta_v2_attention(model)
    rm._fused_attention = fused_attention_modules(model) > 0
    rm._first_token_layer = settings.first_token_top and patch_deberta_v2_first_token(model)
    if settings.compile:
        model = torch.compile(model, dynamic=True)
    rm.model = model
    return rm


def _dtype_kw() -> str:
    try:
        import transformers

        major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
        return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    except Exception:  # pragma: no cover
        return "dtype"
