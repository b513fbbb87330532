"""Shared fixtures. Tests never touch the network: the hub is offline."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
HH_FILES = sorted((SAMPLE / "hh-rlhf").glob("*.jsonl.gz"))


@pytest.fixture
def study_path(tmp_path: Path) -> Path:
    return tmp_path / "study.duckdb"


@pytest.fixture(scope="session")
def tiny_rm_dir(tmp_path_factory) -> Path:
    """A tiny real BERT reward model saved to a folder (seed 0)."""
    from .helpers.tiny_rm import make_tiny_rm

    return make_tiny_rm(tmp_path_factory.mktemp("models") / "tiny-rm-0", seed=0)


@pytest.fixture(scope="session")
def tiny_rm_dir_b(tmp_path_factory) -> Path:
    """A second tiny reward model with other weights (seed 1): a stand-in post-D model."""
    from .helpers.tiny_rm import make_tiny_rm

    return make_tiny_rm(tmp_path_factory.mktemp("models") / "tiny-rm-1", seed=1)
