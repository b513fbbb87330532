"""``rmtui ingest``: read preference datasets into a study."""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.table import Table

from .base import DEFAULT_STUDY, STUDY_OPTION_HELP, app, console, progress_bar, styled


@app.command()
def ingest(
    sources: Optional[List[str]] = typer.Argument(None, help="Files (JSONL/JSON/CSV/Parquet, .gz ok) or hf:NAME datasets."),
    study: str = typer.Option(DEFAULT_STUDY, "--study", "-s", help=STUDY_OPTION_HELP),
    subset: Optional[str] = typer.Option(None, help="Subset name (default: from the file name)."),
    split: Optional[str] = typer.Option(None, help="Split name (default: from the file name)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="hh | jsonl | csv | parquet (default: from the name)."),
    map_: Optional[List[str]] = typer.Option(
        None, "--map", help="Column map: chosen=COL,rejected=COL[,prompt=COL]; or A/B: prompt=instruction+input,"
        "a=COL,b=COL,label=COL (several annotators: label=c1,c2,c3); scores: score_a=COL,score_b=COL; lists: "
        "completions=COL,rating=KEY; attributes: attr.NAME.a=COL,attr.NAME.b=COL,role.NAME=target. "
        "See docs/datasets.md."),
    label: Optional[str] = typer.Option(
        None, "--label", help="What the label values mean, e.g. a=1,b=2,tie=0 or a=-1,b=1 or "
        "'a=model_a,b=model_b,tie=tie|tie (bothbad)' (default: 1/2, A/B, model_a/model_b, tie)."),
    pairs_rule: Optional[str] = typer.Option(
        None, "--pairs", help="How a rated/ranked list becomes pairs: best-worst (default), all, adjacent."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A known dataset's column map (see --preset list)."),
    sql: Optional[str] = typer.Option(
        None, "--sql", help="A DuckDB SELECT returning chosen/rejected or a/b/label (or a/b/score_a/score_b), "
        "optional prompt, subset, split, \"attr.NAME.a\"/\"attr.NAME.b\"; e.g. "
        "\"SELECT q AS prompt, r1 AS a, r2 AS b, w AS label FROM read_json('x.json')\"."),
    inspect: bool = typer.Option(False, "--inspect", help="Show the columns and a few rows of each source and "
                                 "the ingest command to use; reads nothing into the study."),
    hf_split: str = typer.Option("train", help="Split of an hf: dataset."),
    data_dir: Optional[str] = typer.Option(None, help="data_dir of an hf: dataset (e.g. harmless-base)."),
    limit: Optional[int] = typer.Option(None, min=1, help="Read at most N rows per source."),
    strict: bool = typer.Option(False, help="Stop at the first bad row (non-zero exit naming file and line)."),
    replace: bool = typer.Option(False, "--replace", help="A source already in the study: replace its pairs "
                                 "with this reading (without it, reading it with another --map/--label is refused)."),
) -> None:
    """Read preference pairs into the study. Re-ingesting the same data adds nothing; repeated judgments
    of one item (the same prompt and two responses, either order) become one pair with their votes."""
    import time

    from analysis.datasets.readers import READ_STOPPED, ReadOptions
    from analysis.errors import InputError
    from analysis.datasets.ingest import ingest as do_ingest
    from analysis.datasets.presets import all_presets, get_preset, preset_for_hf
    from analysis.datasets.shapes import parse_map
    from analysis.store import open_study
    from analysis.store.pairs import pair_counts

    if preset == "list":
        for p in all_presets().values():
            console.print(f"{p.name:24} {', '.join(p.hf)}\n{'':24} {p.description}", markup=False)
        return
    if inspect:
        from analysis.datasets.peek import inspect_source

        if not sources:
            raise InputError("--inspect: name a file", "Bad option")
        for src in sources:
            console.print(inspect_source(src, limit=3, study=study), markup=False, soft_wrap=True)
        return
    if sql:
        if sources:
            raise InputError("--sql reads what the query names; give no source files beside it", "Bad option")
        sources = ["sql:" + sql]
    if not sources:
        raise InputError("name a file or hf:NAME to ingest (or --sql QUERY, or --inspect FILE)", "Bad option")

    from analysis.datasets.shapes import check_user_map

    check_user_map(map_)

    def options_for(src: str) -> ReadOptions:
        p = get_preset(preset) if preset else preset_for_hf(src)
        items = (p.map_items() if p else []) + list(map_ or [])
        if src.startswith("sql:") and not p:
            items = [_sql_map(src[4:], check=not map_)] + items
        mapping, shape = parse_map(items, label=label or (p.label if p else None),
                                   pairs=pairs_rule or (p.pairs if p else None), preset=p.name if p else None)
        return ReadOptions(subset=subset, split=split, fmt=fmt, mapping=mapping, hf_split=hf_split,
                           hf_data_dir=data_dir, limit=limit, shape=shape)

    t0 = time.perf_counter()
    results = []
    all_opts = [options_for(src) for src in sources]  # a bad --map is refused before a study file exists
    new_study = not _study_exists(study)
    try:
        with open_study(study) as st:
            with progress_bar("pairs") as prog:
                for src, opts in zip(sources, all_opts):
                    task = prog.add_task("ingest " + ("SQL query" if src.startswith("sql:") else src), total=None)
                    res = do_ingest(st, src, opts, strict=strict, replace=replace,
                                    progress=lambda n, t=task: prog.advance(t, n))
                    results.append(res)
            counts = pair_counts(st)
            total = int(counts["pairs"].sum()) if len(counts) else 0
    except BaseException:
        if new_study:  # a failed ingest leaves no new, empty study behind
            _remove_study(study)
        raise
    if new_study and not total:
        _remove_study(study)
    dt = time.perf_counter() - t0

    table = Table(title=f"Study {study}: {total:,} pairs", title_justify="left")
    show_human = bool(len(counts)) and bool(counts["human_ties"].sum() or counts["split_votes"].sum())
    cols = ["subset", "split", "pairs", "identical", "context_differs"] + (["human ties", "split votes"] if show_human else [])
    for col in cols:
        table.add_column(col, justify="right" if col not in ("subset", "split") else "left")
    for r in counts.itertuples():
        cells = [r.subset, r.split, f"{r.pairs:,}", f"{r.identical:,}", f"{r.context_differs:,}"]
        if show_human:
            cells += [f"{r.human_ties:,}", f"{r.split_votes:,}"]
        table.add_row(*cells)
    console.print(table)
    for res in results:
        name = "SQL query" if res.source.startswith("sql:") else res.source
        human = ""
        if res.n_ties or res.n_split_votes:
            human = (f"; {res.n_ties:,} human ties (stored, left out of agreement and regimes), "
                     f"{res.n_split_votes:,} split votes")
        attrs = f"; {res.n_attr_values:,} attribute values as features of {res.featurizer!r}" if res.n_attr_values else ""
        if res.n_replaced:
            console.print(f"{name}: replaced the {res.n_replaced:,} pairs an earlier ingest read from it (--replace)",
                          soft_wrap=True, markup=False)
        console.print(
            f"{name}: read {res.n_read:,} pairs, added {res.n_added:,}, "
            f"skipped {len(res.skipped):,} bad rows, flagged {len(res.flagged):,} (identical pairs, empty responses)"
            + human + attrs, soft_wrap=True, markup=False)
        if res.n_merged:
            console.print(
                f"{name}: merged {res.n_merged:,} records that judge an item already read (same prompt, same two "
                f"responses, either order): {res.n_repeated_items:,} pairs hold several records' votes (majority "
                f"label; no majority is a tie), {res.n_conflicting:,} of them with records that disagreed",
                soft_wrap=True, markup=False)
        stopped = [i for i in res.skipped if i.kind in READ_STOPPED]
        for issue in res.skipped[:10] + [i for i in stopped if i not in res.skipped[:10]]:
            console.print(styled("  ", ("skipped", "yellow"), " ", issue.describe()))
        if not res.n_read and not res.skipped:
            console.print(styled("  ", ("no pairs", "yellow"), f": {res.source} holds no rows (an empty file?)"))
        if len(res.skipped) > 10:
            console.print(f"  ... and {len(res.skipped) - 10} more (see table ingest_issues)")
        for issue in res.flagged[:5]:
            console.print(styled("  ", ("flagged", "cyan"), " ", issue.describe()))
        if len(res.flagged) > 5:
            console.print(f"  ... and {len(res.flagged) - 5} more flags (table ingest_issues)")
    console.print(f"done in {dt:.2f} s")
    # a source without one pair (bad rows only, or empty), or one that stopped before its end (a cut-off
    # .gz: the pairs before the cut are kept): not a success for a script
    if any(not r.n_read or any(i.kind in READ_STOPPED for i in r.skipped) for r in results):
        raise typer.Exit(1)


def _sql_map(sql: str, *, check: bool = True) -> str:
    """The --map a query's standard column names imply (a/b/label, scores, attr."NAME.a", prompt...).
    ``check``: refuse a query that returns none of the standard sets (no --map of the user's own)."""
    from analysis.store.sources import check_columns, sql_columns

    cols = sql_columns(sql)
    if check:
        check_columns(cols)
    keys = ["prompt", "chosen", "rejected", "a", "b", "label", "score_a", "score_b", "margin", "subset", "split",
            "completions", "text", "rating", "ratings", "rank", "ranks"]
    items = [f"{k}={k}" for k in keys if k in cols and k not in ("text", "rating", "rank")]
    items += [f"{c}={c}" for c in cols if c.startswith("attr.")]
    return ",".join(items)


def _study_exists(study: str) -> bool:
    from pathlib import Path

    return Path(study).expanduser().exists()


def _remove_study(study: str) -> None:
    """Remove a study file this command created (and DuckDB's write-ahead log beside it)."""
    from pathlib import Path

    p = Path(study).expanduser()
    for f in (p, p.with_name(p.name + ".wal")):
        try:
            f.unlink()
        except FileNotFoundError:
            pass
