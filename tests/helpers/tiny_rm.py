"""Real (tiny) reward models for tests: a BERT sequence classifier built from a config.

The weights are random but seeded, so rewards are deterministic; the tokenizer is the real
bert-base-uncased WordPiece vocabulary shipped in sample_data/. Saved with ``save_pretrained`` and
loaded back through the same code path users take (``AutoModelForSequenceClassification``).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VOCAB = ROOT / "sample_data" / "tokenizers" / "bert-base-uncased-vocab.txt"


def make_tiny_rm(path: str | Path, *, seed: int = 0, hidden: int = 32, layers: int = 2,
                 max_position: int = 512, num_labels: int = 1, init_std: float = 0.02) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path = Path(path)
    if (path / "config.json").exists():
        return path
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=hidden * 2, max_position_embeddings=max_position, num_labels=num_labels,
        initializer_range=init_std,
    )
    model = BertForSequenceClassification(cfg)
    model.eval()
    tok = BertTokenizerFast(vocab=str(VOCAB), do_lower_case=True, model_max_length=max_position)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
