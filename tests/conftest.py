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
