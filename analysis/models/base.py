"""Loading a base model for training (``rmtui train``, the embedded models' build).

:func:`load_base` resolves ``embedded:pre|post|base`` and local folders, loads a sequence classifier
with one output (a new, seeded head when the base has none) and a tokenizer that truncates from the
left.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analysis.errors import InputError, ModelError
from analysis.models.quiet import quiet_transformers as _quiet

if TYPE_CHECKING:
    from analysis.models.train import TrainSettings


def resolve_base(spec: str) -> str:
    from analysis.models.embedded import resolve_model_spec

    return resolve_model_spec(spec)


def load_base(spec: str, settings: TrainSettings):
    """Load (model, tokenizer) for training: one output (a new head when the base has none)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    _quiet()
    path = resolve_base(spec)
    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as e:
        raise ModelError(f"{spec}: cannot load a model config ({type(e).__name__}: {e}). "
                         "Give a local folder, embedded:pre|post|base, or a hub id with network access.",
                         "Model not found") from e
    kwargs: dict = {}
    if settings.keep_layers is not None:
        n = getattr(config, "num_hidden_layers", None)
        if n is None:
            raise ModelError(f"{spec}: --keep-layers needs a model with num_hidden_layers")
        if not 1 <= settings.keep_layers <= n:
            raise InputError(f"--keep-layers {settings.keep_layers}: the base has {n} layers", "Bad option")
        kwargs["num_hidden_layers"] = settings.keep_layers
    new_head = getattr(config, "num_labels", 2) != 1 or not _has_head(config)
    torch.manual_seed(settings.seed)  # the new head's initial weights
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=torch.float32, ignore_mismatched_sizes=new_head, **kwargs)
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:
        raise ModelError(f"{spec}: cannot load as a sequence classifier: {type(e).__name__}: {e}") from e
    tok.truncation_side = "left"
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ModelError(f"{spec}: the tokenizer has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


def _has_head(config) -> bool:
    archs = getattr(config, "architectures", None) or []
    return any("SequenceClassification" in a for a in archs)
