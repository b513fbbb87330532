"""``rmtui featurize``: label every text of a study with a featurizer; ``--check-with`` reports the
agreement (Cohen's kappa) of a second LLM with the first on a seeded sample."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer
from rich.table import Table

from .base import DEFAULT_STUDY, STUDY_OPTION_HELP, app, console, err_console, progress_bar, styled


def _fmt(v, digits=3) -> str:
    try:
        if v is None or v != v:
            return "-"
    except TypeError:
        return "-"
    return f"{v:.{digits}f}" if abs(v) < 10 else f"{v:.1f}"


_KIND = {"binary": "bin", "ordinal": "ord", "count": "count", "continuous": "cont"}


@app.command()
def featurize(
    labeler: str = typer.Option(..., "--labeler", "-l",
                                help="heuristic | proxy (offline PROXY harmless/helpful targets) | llm | hf:MODEL (hub id or folder) | file:PATH (CSV/JSONL labels)."),
    study: str = typer.Option(DEFAULT_STUDY, "--study", "-s", help=STUDY_OPTION_HELP),
    endpoint: Optional[str] = typer.Option(None, help="llm: OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 "
                                          "(or RMTUI_LLM_BASE_URL, RMTUI_LLM_ENDPOINT, OPENAI_BASE_URL)."),
    model: Optional[str] = typer.Option(None, help="llm: model name the endpoint serves (or RMTUI_LLM_MODEL)."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help="llm: NAME of the environment variable holding the API key "
                                    "(the key itself is never stored)."),
    concurrency: int = typer.Option(8, min=1, help="llm: requests in flight at once."),
    config: Optional[str] = typer.Option(None, help="llm: label config TOML (default: the paper's 19 properties)."),
    timeout: float = typer.Option(60.0, min=0.001, help="llm: seconds per request before it is retried."),
    max_retries: int = typer.Option(4, min=0, help="llm: retries per text after the first attempt."),
    json_mode: bool = typer.Option(True, help="llm: ask for response_format json_object (turn off for servers "
                                   "that reject it)."),
    price_per_1k_prompt: Optional[float] = typer.Option(None, help="llm: price per 1,000 prompt tokens (for the estimate)."),
    price_per_1k_completion: Optional[float] = typer.Option(None, help="llm: price per 1,000 completion tokens."),
    confirm_above: float = typer.Option(5.0, help="llm: ask before starting when the estimate exceeds this many dollars."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    replace: bool = typer.Option(False, help="Drop this featurizer's values from another version (other config)."),
    skip_failed: bool = typer.Option(False, help="llm: do not ask again for texts listed in label_failures."),
    limit: Optional[int] = typer.Option(None, min=1, help="Only the texts of the first N pairs (by source and row)."),
    hf_map: Optional[List[str]] = typer.Option(None, help="hf: LABEL=name (binary, top label), LABEL=p:name "
                                               "(probability); add :target to mark a target."),
    hf_on: str = typer.Option("response", help="hf: classify the last response or the whole text."),
    batch_size: int = typer.Option(32, min=1, help="hf: texts per batch."),
    file_source: Optional[str] = typer.Option(None, help="file: the pairs.source that a paper-layout file's "
                                              "row ids refer to."),
    workers: Optional[int] = typer.Option(None, min=1, help="heuristic: processes (default: 1, or up to 8 on a box "
                                          "with 4+ cores for 20,000+ texts)."),
    check_with: Optional[str] = typer.Option(None, help="llm: after labelling, relabel a seeded sample with this "
                                             "second model and report Cohen's kappa per feature."),
    check_endpoint: Optional[str] = typer.Option(None, help="Endpoint of the check model (default: --endpoint)."),
    check_n: int = typer.Option(100, min=1, help="Pairs in the check sample."),
    check_seed: int = typer.Option(0, help="Seed of the check sample."),
) -> None:
    """Label the study's texts; cached per text, so a rerun only does what is missing."""
    import threading

    from analysis.errors import RmtuiError
    from analysis.features import featurize_study, study_texts
    from analysis.store import open_study
    from analysis.store.features import label_failures, side_means

    from .base import quiet_libraries

    spec = labeler.strip()
    if spec.startswith("hf:"):
        quiet_libraries()
    opts: dict = {}
    if spec == "llm" or spec.startswith("llm:"):
        opts = dict(endpoint=endpoint, model=model or (spec[4:] if spec.startswith("llm:") else None),
                    api_key_env=api_key_env, concurrency=concurrency, config=config, timeout=timeout,
                    max_retries=max_retries, json_mode=json_mode, price_per_1k_prompt=price_per_1k_prompt,
                    price_per_1k_completion=price_per_1k_completion, confirm_above_usd=confirm_above)
    elif spec.startswith("hf:"):
        opts = dict(label_map=hf_map, on=hf_on, batch_size=batch_size)
    elif spec.startswith("file:"):
        opts = dict(source=file_source)
    elif spec == "heuristic":
        opts = dict(workers=workers)

    def confirm(est: dict) -> bool:
        cost = f"about ${est['cost_usd']:,.2f}" if est.get("cost_usd") is not None else "cost unknown (no --price-per-1k-*)"
        console.print(styled((f"{est['texts']:,} texts", "bold"), f" to label with {est['model']} at {est['endpoint']}: about "
                      f"{est['prompt_tokens']:,} prompt + {est['completion_tokens']:,} completion tokens, {cost}."))
        if yes:
            return True
        if not sys.stdin.isatty():
            raise RmtuiError("the estimate is above the confirmation threshold and there is no terminal to ask; "
                             "rerun with --yes (or a smaller --limit)", "Confirmation needed")
        return typer.confirm("Start?", default=False)

    if opts.get("endpoint"):
        from analysis.llm.client import key_warning

        w = key_warning(opts["endpoint"], api_key_env)
        if w:
            err_console.print(styled(("warning", "yellow"), ": ", w))
    cancel = threading.Event()
    with open_study(study, create=False) as st:
        n_total = len(study_texts(st, limit=limit))
        with progress_bar("texts") as prog:
            task = prog.add_task(f"featurize {spec}", total=n_total)
            try:
                res = featurize_study(st, spec, limit=limit, progress=lambda n: prog.advance(task, n),
                                      confirm=confirm, cancel=cancel, replace=replace, skip_failed=skip_failed, **opts)
            except KeyboardInterrupt:
                cancel.set()
                raise
        if res.cancelled and res.n_done == 0 and res.estimate and res.estimate.get("ask"):
            console.print("Cancelled: nothing was sent.")
            return
        means = side_means(st, res.featurizer)
        table = Table(title=f"{res.featurizer}: mean in chosen vs rejected texts (binary: prevalence)",
                      title_justify="left", caption="* proxy (a cheap measurement, not a judged property)"
                      if means["proxy"].any() else None, caption_justify="left")
        table.add_column("feature", no_wrap=True)
        for col in ("kind", "role", "n", "chosen", "rejected", "diff"):
            table.add_column(col, justify="left" if col in ("kind", "role") else "right", no_wrap=True)
        for r in means.itertuples():
            n = f"{r.n_chosen:,}" if r.n_chosen == r.n_rejected else f"{r.n_chosen:,}/{r.n_rejected:,}"
            table.add_row(r.name + ("*" if r.proxy else ""), _KIND.get(r.kind, r.kind), r.role, n, _fmt(r.mean_chosen),
                          _fmt(r.mean_rejected), _fmt(r.diff))
        console.print(table)
        console.print(
            f"{res.featurizer} (version {res.version}): {res.n_texts:,} texts, {res.n_done:,} featurized now, "
            f"{res.n_cached:,} already done, {res.n_failed:,} failed; {res.seconds:.1f} s"
            + (f" ({res.texts_per_s:,.0f} texts/s)" if res.n_done else ""))
        if res.extra:
            console.print("  " + ", ".join(f"{k}: {v}" for k, v in res.extra.items()))
        if res.n_failed:
            fails = label_failures(st, res.featurizer)
            console.print(styled((f"{len(fails):,} texts have no labels", "yellow"), " (table label_failures); first reasons:"))
            for r in fails.head(5).itertuples():
                console.print(f"  {r.text_id}: {r.reason} ({r.attempts} attempts)")
            console.print("Rerun the same command to ask again for them.")
        if res.cancelled:
            console.print(styled(("Stopped", "yellow"), ": what was labelled stays; rerun to resume."))
        all_failed = bool(res.n_failed) and not res.n_done and not res.n_cached and not res.cancelled
        if check_with and not all_failed:
            if not (spec == "llm" or spec.startswith("llm:")):
                raise RmtuiError("--check-with compares two LLM labelers; use it with --labeler llm", "Labeler check")
            from analysis.features.check import check_labeler

            cres, agree = check_labeler(
                st, res.featurizer, endpoint=check_endpoint or endpoint, model=check_with, n_pairs=check_n,
                seed=check_seed, confirm=confirm, api_key_env=api_key_env, concurrency=concurrency, timeout=timeout,
                max_retries=max_retries, json_mode=json_mode, price_per_1k_prompt=price_per_1k_prompt,
                price_per_1k_completion=price_per_1k_completion, confirm_above_usd=confirm_above)
            t = Table(title=f"Agreement of {cres.featurizer} with {res.featurizer} on {check_n} pairs (seed {check_seed})",
                      title_justify="left")
            for col in ("feature", "n", "agreement", "prev. ref", "prev. check", "Cohen's kappa"):
                t.add_column(col, justify="left" if col == "feature" else "right")
            for r in agree.itertuples():
                t.add_row(r.name, f"{r.n:,}", _fmt(r.agreement), _fmt(r.prevalence_a), _fmt(r.prevalence_b),
                          _fmt(r.kappa))
            console.print(t)
            if cres.n_failed:
                console.print(styled((f"{cres.n_failed} texts of the sample failed with {check_with}", "yellow"), " (label_failures)"))
        if all_failed:  # nothing labelled at all: a script must not read this as success
            raise typer.Exit(1)
