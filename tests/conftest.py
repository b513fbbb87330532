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


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``-n 2 --dist loadgroup``, the README's command) the tests of a module
    that share a module-scoped fixture run on one worker, so the fixture is made once, not once per
    worker; every other test is distributed one by one."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        if any(d.scope == "module" for defs in info.name2fixturedefs.values() for d in defs):
            if not item.get_closest_marker("xdist_group"):
                item.add_marker(pytest.mark.xdist_group(item.module.__name__))
