"""``rmtui train``: train a small reward model (Bradley-Terry) and report held-out accuracy."""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.table import Table

from .base import app, console, quiet_libraries, progress_bar


@app.command()
def train(
    base: str = typer.Option(..., "--base", help="Base model: a local folder, a hub id, embedded:base "
                             "(all-MiniLM-L6-v2, new head), embedded:pre or embedded:post."),
    out: str = typer.Option(..., "--out", "-o", help="Folder to save the trained model to."),
    study: Optional[str] = typer.Option(None, "--study", "-s", help="Train on the pairs of this study "
                                        "(and record which pairs are held out in it)."),
    data: Optional[List[str]] = typer.Option(None, "--data", help="Train on these files instead (repeatable)."),
    subsets: Optional[str] = typer.Option(None, help="Only these subsets, comma-separated."),
    seed: int = typer.Option(0, help="Seed of the held-out split, the head's initial weights and the batch order."),
    epochs: float = typer.Option(1.0, help="Passes over the training pairs (fractions allowed)."),
    lr: float = typer.Option(1e-4, help="Peak learning rate (AdamW, linear warm-up and decay)."),
    max_length: int = typer.Option(256, help="Tokens per text; the context is cut from the left."),
    batch_size: int = typer.Option(16, help="Pairs per step."),
    heldout_frac: float = typer.Option(0.2, help="Fraction of every subset held out (seeded hash of the pair id)."),
    train_layers: int = typer.Option(1, help="Top encoder layers to train (with pooler and head); -1: all."),
    keep_layers: Optional[int] = typer.Option(None, help="Keep only the bottom N encoder layers of the base."),
    limit: Optional[int] = typer.Option(None, help="With --data: read at most N rows per file (a quick trial)."),
    mark_heldout: bool = typer.Option(True, help="With --study: write pairs.heldout (pairs this model never saw)."),
    overwrite: bool = typer.Option(False, help="Write into a non-empty --out folder."),
) -> None:
    """Train a reward model on preference pairs: -log sigmoid(r_chosen - r_rejected), held-out accuracy per subset."""
    import time
    from pathlib import Path

    from analysis.errors import InputError
    from analysis.store import open_study
    from analysis.models.train import TrainSettings
    from analysis.models.train import train as do_train
    from analysis.models.train_pairs import (TRAINED_PAIRS, mark_heldout_from_keys, pairs_from_files, pairs_from_study,
                                      read_trained_pairs)

    quiet_libraries()
    if bool(study) == bool(data):
        raise InputError("give exactly one of --study FILE or --data FILE...", "Bad option")
    subset_list = [s.strip() for s in subsets.split(",") if s.strip()] if subsets else None
    settings = TrainSettings(epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length, train_layers=train_layers,
                             keep_layers=keep_layers, seed=seed, heldout_frac=heldout_frac)
    extra_held: list[str] = []
    if study:
        with open_study(study, create=False) as st:
            frame = pairs_from_study(st, subset_list)
        # never train on a pair the study already holds out for another model
        extra_held = list(frame.loc[frame["heldout"].eq(True), "pair_id"])
    else:
        frame = pairs_from_files(data or [], subset_list, limit=limit)
    console.print(f"{len(frame):,} pairs from {study or ', '.join(data or [])}"
                  + (f" (held out in the study already: {len(extra_held):,})" if extra_held else ""))

    t0 = time.perf_counter()
    with progress_bar(transient=False) as prog:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = prog.add_task(stage, total=total)
            prog.update(tasks[stage], completed=done, total=total)

        res = do_train(base, out, frame, settings, extra_heldout=extra_held, progress=progress, overwrite=overwrite)

    table = Table(title=f"Held-out pairwise accuracy ({res.n_heldout:,} pairs held out, {res.n_train:,} trained on)",
                  title_justify="left")
    for col in ("subset", "pairs", "base", "trained"):
        table.add_column(col, justify="left" if col == "subset" else "right")
    base_acc = {} if res.base_accuracy is None else dict(zip(res.base_accuracy["subset"], res.base_accuracy["accuracy"]))
    for r in res.accuracy.itertuples():
        b = base_acc.get(r.subset)
        table.add_row(r.subset, f"{r.n:,}", "" if b is None else f"{b:.3f}", f"{r.accuracy:.3f}")
    console.print(table)
    console.print(f"trained {res.phase.steps} steps on {res.phase.n_pairs:,} pairs "
                  f"({res.phase.n_skipped_identical} identical skipped), final loss {res.phase.final_loss:.3f}; "
                  f"{res.n_truncated:,} texts cut to {max_length} tokens")
    if study and mark_heldout:
        with open_study(study, create=False) as st:
            n_held, n_in = mark_heldout_from_keys(st, read_trained_pairs(Path(out) / TRAINED_PAIRS),
                                                  keep_in_sample=True)
        console.print(f"{study}: pairs.heldout set: {n_held:,} held out, {n_in:,} in-sample")
    console.print(f"saved to {out} in {time.perf_counter() - t0:.1f} s "
                  "(loads with AutoModelForSequenceClassification.from_pretrained)")
