"""The pairs a training run reads, its held-out split, and the record of what it trained on.

Pair frames have the columns of :data:`PAIR_COLUMNS`, read from preference files
(:func:`pairs_from_files`) or a study (:func:`pairs_from_study`). Held-out pairs: :func:`heldout_pairs`
picks a seeded fraction by hashing ``seed`` and the pair's id, so a pair's status never depends on
which other pairs are present. A saved model folder lists the content key (:func:`pair_key`) of every
in-sample pair in :data:`TRAINED_PAIRS`; :func:`mark_heldout_from_keys` marks a study's pairs the model
never saw.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from analysis.errors import InputError
from analysis.hashing import digest

TRAINED_PAIRS = "rmtui_trained_pairs.txt.gz"

PAIR_COLUMNS = ["pair_id", "subset", "chosen_context", "chosen_response", "rejected_context",
                "rejected_response", "identical"]


# ---------------------------------------------------------------------------------------------
# held-out split


def _unit(seed: int, pair_id: str) -> float:
    h = hashlib.blake2b(f"heldout\x1f{seed}\x1f{pair_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def heldout_pairs(pair_ids: Iterable[str], seed: int = 0, frac: float = 0.2) -> set[str]:
    """The pair ids held out from training: those whose seeded hash falls below ``frac``.

    Deterministic and independent per pair (adding or removing other pairs changes nothing), so
    about ``frac`` of every subset is held out.
    """
    if not 0.0 <= frac < 1.0:
        raise InputError(f"--heldout-frac {frac}: must be at least 0 and below 1", "Bad option")
    return {p for p in pair_ids if _unit(seed, p) < frac}


def pair_key(chosen_text_id: str, rejected_text_id: str) -> str:
    """A content key of a pair (independent of subset names and row numbers)."""
    return digest("pairkey", chosen_text_id, rejected_text_id, size=8)


# ---------------------------------------------------------------------------------------------
# data


def pairs_from_files(paths: Sequence[str | Path], subsets: Sequence[str] | None = None,
                     limit: int | None = None) -> pd.DataFrame:
    """Read preference files (hh-rlhf JSONL or anything analysis.datasets.readers reads) into a pair frame.

    ``limit``: read at most that many rows per file."""
    from analysis.datasets.readers import Pair, ReadOptions, read_pairs

    rows = []
    for p in paths:
        for item in read_pairs(p, ReadOptions(limit=limit)):
            if isinstance(item, Pair):
                rows.append((item.pair_id, item.subset, item.chosen_context, item.chosen_response,
                             item.rejected_context, item.rejected_response, item.identical))
    frame = pd.DataFrame(rows, columns=PAIR_COLUMNS).drop_duplicates("pair_id")
    return _filter_subsets(frame, subsets)


def pairs_from_study(study, subsets: Sequence[str] | None = None) -> pd.DataFrame:
    from analysis.store.training import training_pairs

    return _filter_subsets(training_pairs(study), subsets)


def _filter_subsets(frame: pd.DataFrame, subsets: Sequence[str] | None) -> pd.DataFrame:
    if not subsets:
        return frame.reset_index(drop=True)
    known = set(frame["subset"])
    missing = [s for s in subsets if s not in known]
    if missing:
        raise InputError(f"--subsets: {', '.join(missing)} not in the data (it has: {', '.join(sorted(known))})",
                         "Bad option")
    return frame[frame["subset"].isin(list(subsets))].reset_index(drop=True)


def add_text_keys(frame: pd.DataFrame) -> pd.DataFrame:
    from analysis.hashing import text_id

    frame = frame.copy()
    frame["chosen_key"] = [text_id(c, r) for c, r in zip(frame["chosen_context"], frame["chosen_response"])]
    frame["rejected_key"] = [text_id(c, r) for c, r in zip(frame["rejected_context"], frame["rejected_response"])]
    return frame


def mark_split(frame: pd.DataFrame, seed: int, frac: float, extra_heldout: Iterable[str] = ()) -> pd.DataFrame:
    """Add a boolean ``heldout`` column: the seeded fraction plus any ``extra_heldout`` pair ids."""
    held = heldout_pairs(frame["pair_id"], seed, frac) | set(extra_heldout)
    frame = frame.copy()
    frame["heldout"] = frame["pair_id"].isin(held)
    return frame


# ---------------------------------------------------------------------------------------------
# in-sample keys


def write_trained_pairs(path: Path, frame: pd.DataFrame) -> None:
    """One content key per in-sample pair (see :func:`pair_key`), sorted, gzip (mtime 0: reproducible)."""
    if "chosen_key" not in frame:
        frame = add_text_keys(frame)
    keys = sorted({pair_key(c, r) for c, r in zip(frame["chosen_key"], frame["rejected_key"])})
    data = ("\n".join(keys) + "\n").encode()
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(data)


def read_trained_pairs(path: str | Path) -> set[str]:
    with gzip.open(path, "rt") as fh:
        return {line.strip() for line in fh if line.strip()}


def mark_heldout_from_keys(study, trained_keys: set[str], *, keep_in_sample: bool = False) -> tuple[int, int]:
    """Set ``pairs.heldout``: TRUE for every pair of the study not among ``trained_keys``.

    With ``keep_in_sample``, pairs already marked FALSE (another RM of the study trained on them)
    stay FALSE. Returns (n_heldout, n_in_sample).
    """
    from analysis.store.pairs import set_heldout
    from analysis.store.training import pair_text_ids

    ids = pair_text_ids(study)
    keys = [pair_key(c, r) for c, r in zip(ids["chosen_text_id"], ids["rejected_text_id"])]
    was_in = (ids["heldout"].eq(False).fillna(False).astype(bool).tolist() if keep_in_sample
              else [False] * len(ids))
    held = [p for p, k, w in zip(ids["pair_id"], keys, was_in) if k not in trained_keys and not w]
    set_heldout(study, held, all_known=True)
    return len(held), len(ids) - len(held)
