"""``rmtui score`` and ``rmtui bench scoring``: reward every text of a study with a reward model."""

from __future__ import annotations

from typing import Optional

import typer

from .base import DEFAULT_STUDY, STUDY_OPTION_HELP, app, bench_app, console, quiet_libraries


def _say(*args) -> None:
    console.print(*args, soft_wrap=True)


def _progress():
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, transient=True,
    )


@app.command()
def score(
    study: str = typer.Option(DEFAULT_STUDY, "--study", "-s", help=STUDY_OPTION_HELP),
    model: str = typer.Option(..., "--model", "-m", help="Hub id (owner/name or owner/name@REVISION) or local model folder."),
    role: str = typer.Option(..., "--role", help="pre | post | other (a new pre/post moves the old one to other)."),
    name: Optional[str] = typer.Option(None, "--name", help="Display name (default: folder name or hub id)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bf16 on cuda, fp32 on cpu) | bf16 | fp16 | fp32."),
    token_budget: Optional[int] = typer.Option(None, "--token-budget", help="Padded tokens per batch, halved on "
                                               "CUDA OOM (default: 16384 on cuda, 4096 on cpu)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="pair | raw | chat (default: chat for decoder RMs "
                                      "with a chat template, else pair)."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Tokens per text (default: the model's); "
                                             "the context is truncated from the left."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Score at most N not-yet-scored texts."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run the model repository's own code."),
    check_invariance: bool = typer.Option(False, "--check-invariance", help="First compare batched rewards with "
                                          "one-text-per-forward rewards on 64 texts and print the max abs diff."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    chunk_size: int = typer.Option(1024, "--chunk-size", help="Texts per committed chunk (a kill loses at most one)."),
) -> None:
    """Score every text of the study's pairs with a reward model; cached texts are skipped."""
    quiet_libraries()
    from analysis.scoring import ScoreSettings, load_reward_model, score_study
    from analysis.store import open_study

    import os

    trust_remote_code = trust_remote_code or os.environ.get("RMTUI_TRUST_REMOTE_CODE", "").strip().lower() in (
        "1", "true", "yes")
    settings = ScoreSettings(device=device, dtype=dtype, format=fmt, max_length=max_length,
                             token_budget=token_budget, trust_remote_code=trust_remote_code, compile=compile_,
                             chunk_size=chunk_size)
    if role not in ("pre", "post", "other"):
        from analysis.errors import RmtuiError

        raise RmtuiError(f"--role {role!r}: expected pre, post or other", "Bad option")
    # first: a locked or unreadable study fails before the model loads; shared: the file is held only
    # while a chunk is written, so the app and rmtui summary can open it while this scores
    with open_study(study, create=False, shared=True, linger=None) as st:
        with console.status(f"loading {model}"):
            rm = load_reward_model(model, settings, name=name)
        _say(f"model [bold]{rm.name}[/] id {rm.model_id}: {rm.format} format, {rm.dtype} on {rm.device}, "
             f"max length {rm.max_length}, padding {rm.padding_side}, reward {rm.reward_rule}, "
             f"revision {rm.revision}")
        with _progress() as prog:
            task = prog.add_task(f"score {rm.name}", total=None, rate="")
            state = {"t0": None}

            def progress(done: int, total: int) -> None:
                import time

                if state["t0"] is None:
                    state["t0"] = time.perf_counter()
                dt = time.perf_counter() - state["t0"]
                rate = f"{done / dt:,.1f} texts/s" if dt > 0 and done else ""
                prog.update(task, completed=done, total=total, rate=rate)

            def on_commit(done: int, total: int) -> None:
                # one plain line per committed chunk when the output is a log file, not a terminal
                if not console.is_terminal:
                    _say(f"committed {done}/{total} texts")

            res = score_study(st, rm, role, name=name, limit=limit, progress=progress,
                              check_invariance_n=64 if check_invariance else 0, on_commit=on_commit)
    if res.invariance_max_abs_diff is not None:
        ok = res.invariance_max_abs_diff < (1e-4 if res.dtype == "fp32" else 5e-2)
        _say(f"batch invariance: max |batched - one at a time| = {res.invariance_max_abs_diff:.3g} "
                      f"on 64 texts ({'ok' if ok else '[red]too large[/]'} for {res.dtype})")
    for mid in res.demoted:
        _say(f"[yellow]model {mid} was {role}; it is now 'other'[/]")
    if res.n_oom:
        _say(f"[yellow]out of memory {res.n_oom} time(s): token budget lowered to {res.token_budget}[/]")
    _say(
        f"scored {res.n_scored:,}, skipped {res.n_skipped:,} cached, truncated {res.n_truncated:,}, "
        f"{res.texts_per_s:,.1f} texts/s ({res.seconds:.1f} s), {res.n_texts:,} texts in the study; "
        f"model {res.model_id} as {res.role}"
    )
    if st.n_lock_waits:  # another process (the app, rmtui summary) had the study open at a commit
        _say(f"shared the study: waited {st.lock_wait_s:.1f} s in all for other processes "
             f"({st.n_lock_waits} retries, {st.n_opens} opens)")


@bench_app.command("scoring")
def bench_scoring(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Hub id or local folder (a sequence classifier)."),
    from_config: Optional[str] = typer.Option(None, "--from-config", help="Random weights of a named shape instead: "
                                              "deberta-v3-large | deberta-v3-base | tiny-deberta."),
    n: int = typer.Option(256, "--n", help="Texts to score."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    dtype: str = typer.Option("auto", "--dtype", help="Engine dtype (the naive loop is always fp32)."),
    token_budget: Optional[int] = typer.Option(None, "--token-budget", help="Default: 16384 on cuda, 4096 on cpu."),
    max_length: Optional[int] = typer.Option(None, "--max-length"),
    texts: Optional[str] = typer.Option(None, "--texts", help="Dataset file, or 'all': a seeded draw from all four "
                                        "sample_data hh-rlhf subsets (default: sample_data harmless-base)."),
    naive_n: Optional[int] = typer.Option(None, "--naive-n", help="Time the naive loop on the first N texts only "
                                          "(default: all; on a GPU it runs at a few texts/s)."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the engine's model."),
    untrained_head: bool = typer.Option(False, "--allow-untrained-head", help="Accept an encoder without a "
                                        "trained reward head (e.g. all-MiniLM-L6-v2); rewards are meaningless."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads (default: torch's choice)."),
) -> None:
    """Naive loop (one text per forward, fp32, cache emptied per pair) vs the engine, same texts."""
    import tempfile

    quiet_libraries()
    from analysis.errors import RmtuiError
    from analysis.scoring import ScoreSettings, bench, load_reward_model, random_model_folder, sample_texts

    if threads:
        import torch

        torch.set_num_threads(threads)
    if bool(model) == bool(from_config):
        raise RmtuiError("give exactly one of --model or --from-config", "Bad option")
    settings = ScoreSettings(device=device, dtype=dtype, token_budget=token_budget, max_length=max_length,
                             allow_untrained_head=untrained_head, compile=compile_)
    with tempfile.TemporaryDirectory(prefix="rmtui-bench-") as tmp:
        spec = model or str(random_model_folder(from_config, f"{tmp}/{from_config}"))
        with console.status(f"loading {spec}"):
            rm = load_reward_model(spec, settings, name=from_config)
        frame = sample_texts(texts, n)
        _say(f"{len(frame)} texts, model {rm.name}, {rm.format} format, max length {rm.max_length}, "
                      f"engine {rm.dtype} on {rm.device}, token budget {rm.runner.budget}")
        with console.status("naive loop, then engine"):
            r = bench(rm, frame, naive_n=naive_n)
    tol = 1e-4 if r.dtype == "fp32" else 5e-2
    agree = r.max_abs_diff < tol
    _say(f"mean {r.mean_tokens:.0f} tokens per text")
    _say(f"naive (1 text/forward, fp32): {r.naive_tps:,.1f} texts/s, {r.naive_tokens_per_s:,.0f} tokens/s "
         f"({r.n_naive} texts in {r.naive_s:.2f} s)")
    _say(f"engine ({r.dtype}, sorted batches):  {r.engine_tps:,.1f} texts/s, {r.engine_tokens_per_s:,.0f} tokens/s "
         f"({r.n} texts in {r.engine_s:.2f} s)")
    _say(f"ratio {r.ratio:.1f}x; rewards max abs diff {r.max_abs_diff:.3g} "
                  f"({'agree' if agree else '[red]DISAGREE[/]'}, tolerance {tol:g}); truncated {r.n_truncated}")
    if not agree:
        raise typer.Exit(1)
