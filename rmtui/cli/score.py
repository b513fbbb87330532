"""``rmtui score`` and ``rmtui bench scoring``: reward every text of a study with a reward model."""

from __future__ import annotations

import contextlib
import tempfile
from typing import Optional

import typer

from .base import DEFAULT_STUDY, STUDY_OPTION_HELP, app, bench_app, console, quiet_libraries, progress_bar, styled


def _say(*args) -> None:
    console.print(*args, soft_wrap=True)


def _progress():
    return progress_bar("texts", rate=True)


@app.command()
def score(
    study: str = typer.Option(DEFAULT_STUDY, "--study", "-s", help=STUDY_OPTION_HELP),
    model: str = typer.Option(..., "--model", "-m", help="Hub id (owner/name or owner/name@REVISION), local model "
                              "folder, or a served RM: http://HOST:PORT/v1#MODEL (vLLM's /classify)."),
    role: str = typer.Option(..., "--role", help="pre | post | other (a new pre/post moves the old one to other)."),
    name: Optional[str] = typer.Option(None, "--name", help="Display name (default: folder name or hub id)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bf16 on cuda, fp32 on cpu) | bf16 | fp16 | fp32."),
    token_budget: Optional[int] = typer.Option(None, "--token-budget", min=1, help="Padded tokens per batch, halved on "
                                               "CUDA OOM (default: 16384 on cuda, 4096 on cpu)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="pair | raw | chat (default: chat for decoder RMs "
                                      "with a chat template, else pair)."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Tokens per text (default: the model's); "
                                             "the context is truncated from the left."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Score at most N not-yet-scored texts."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Run the model repository's own code."),
    check_invariance: bool = typer.Option(False, "--check-invariance", help="First compare batched rewards with "
                                          "one-text-per-forward rewards on 64 texts and print the max abs diff."),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    chunk_size: int = typer.Option(1024, "--chunk-size", min=1, help="Texts per committed chunk (a kill loses at most one)."),
    engine: Optional[str] = typer.Option(None, "--engine", help="local (this process) | ray (a Ray cluster) | "
                                         "vllm-server (default: vllm-server for http:// models, else local)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray engine: auto (this node's cluster) "
                                              "or HOST:PORT (default: a Ray started here)."),
    gpus: Optional[int] = typer.Option(None, "--gpus", min=0, help="Ray engine: GPUs in all, one actor each (default: "
                                       "every GPU of the cluster; 0: CPU actors)."),
    actors: Optional[int] = typer.Option(None, "--actors", min=1, help="Ray engine: actors (default: one per GPU; on CPUs, "
                                         "the CPUs left after one kept for Ray, at most 8)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Served RM: folder or hub id of its tokenizer "
                                            "(default: the served model's name)."),
    max_tries: Optional[int] = typer.Option(None, "--max-tries", min=1, help="Served RM: attempts per request on "
                                            "HTTP 5xx/429 or a dropped connection (default 6; back-off with jitter, "
                                            "Retry-After honoured)."),
    retry_seconds: Optional[float] = typer.Option(None, "--retry-seconds", min=0, help="Served RM: seconds of "
                                                  "retrying per request at most (default 300)."),
) -> None:
    """Score every text of the study's pairs with a reward model; cached texts are skipped."""
    quiet_libraries()
    from analysis.errors import RmtuiError
    from analysis.scoring import ScoreSettings
    from analysis.scoring.registry import make_backend
    from analysis.store import open_study

    import os

    trust_remote_code = trust_remote_code or os.environ.get("RMTUI_TRUST_REMOTE_CODE", "").strip().lower() in (
        "1", "true", "yes")
    settings = ScoreSettings(device=device, dtype=dtype, format=fmt, max_length=max_length,
                             token_budget=token_budget, trust_remote_code=trust_remote_code, compile=compile_,
                             chunk_size=chunk_size)
    from analysis.choices import resolve

    role = resolve("--role", role, ("pre", "post", "other"))  # a unique prefix (po, o) is enough
    options = _engine_options(engine, model, ray_address=ray_address, gpus=gpus, actors=actors, tokenizer=tokenizer,
                              max_tries=max_tries, retry_seconds=retry_seconds)
    # first: a locked or unreadable study fails before the model loads; shared: the file is held only
    # while a chunk is written, so the app and rmtui summary can open it while this scores
    with open_study(study, create=False, shared=True, linger=None) as st:
        with console.status(f"loading {model}"):
            rm = make_backend(model, settings, name=name, engine=engine, **options)
        try:
            _describe(rm)
            res = _score(st, rm, role, name, limit, check_invariance)
        finally:
            rm.close()
    _report(res, role, st)


def _engine_options(engine: Optional[str], model: str, **given) -> dict:
    """The options of the engine that will run, refusing those of another engine."""
    from analysis.errors import RmtuiError
    from analysis.scoring.backends import is_served_spec

    engine = engine or ("vllm-server" if is_served_spec(model) else "local")
    takes = {"ray": {"ray_address": "address", "gpus": "gpus", "actors": "actors"},
             "vllm-server": {"tokenizer": "tokenizer", "max_tries": "max_tries",
                             "retry_seconds": "retry_seconds"}}.get(engine, {})
    out = {}
    for key, value in given.items():
        if value is None:
            continue
        if key not in takes:
            raise RmtuiError(f"--{key.replace('_', '-')} is an option of "
                             f"{'a served RM' if key in ('tokenizer', 'max_tries', 'retry_seconds') else 'the Ray engine'}"
                             f", not of --engine {engine}",
                             "Bad option")
        out[takes[key]] = value
    return out


def _describe(rm) -> None:
    engine = getattr(rm, "engine", "local")
    inner = getattr(rm, "rm", rm)
    where = {"ray": lambda: f" on Ray: {rm.n_actors} actor(s), {rm.gpus_per_actor:g} GPU and "
                            f"{rm.cpus_per_actor:g} CPU each",
             "vllm-server": lambda: f" served by {rm.url}"}.get(engine, lambda: "")()
    _say(styled("model ", (rm.name, "bold"), f" id {rm.model_id}: {rm.format} format, {rm.dtype} on {rm.device}, "
                f"max length {rm.max_length}, padding {inner.padding_side}, reward {inner.reward_rule}, "
                f"revision {inner.revision}{where}"))


def _score(st, rm, role, name, limit, check_invariance):
    from analysis.scoring import score_study

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
            # one plain line per committed chunk when the output is a log file, not a terminal: what a
            # killed run kept (the resume test reads them)
            if not console.is_terminal:
                _say(f"committed {done}/{total} texts")

        return score_study(st, rm, role, name=name, limit=limit, progress=progress,
                           check_invariance_n=64 if check_invariance else 0, on_commit=on_commit)


def _report(res, role, st) -> None:
    if res.invariance_max_abs_diff is not None:
        ok = res.invariance_max_abs_diff < (1e-4 if res.dtype == "fp32" else 5e-2)
        _say(f"batch invariance: max |batched - one at a time| = {res.invariance_max_abs_diff:.3g} "
                      f"on 64 texts ({'ok' if ok else 'TOO LARGE'} for {res.dtype})")
    for mid in res.demoted:
        _say(styled((f"model {mid} was {role}; it is now 'other'", "yellow")))
    if res.n_oom:
        _say(styled((f"out of memory {res.n_oom} time(s): token budget lowered to {res.token_budget}", "yellow")))
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
    n: int = typer.Option(256, "--n", min=1, help="Texts to score."),
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
    engine: str = typer.Option("local", "--engine", help="local: the naive loop vs the engine; ray: the engine "
                               "in this process vs on a Ray cluster, same texts."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray: auto | HOST:PORT (default: a Ray "
                                              "started here)."),
    gpus: Optional[int] = typer.Option(None, "--gpus", help="Ray: GPUs in all, one actor each (default: every "
                                       "GPU of the cluster; 0: CPU actors)."),
    actors: Optional[int] = typer.Option(None, "--actors", help="Ray: actors (default: one per GPU, or the CPUs "
                                         "left after one kept for Ray)."),
    chunk_size: int = typer.Option(256, "--chunk-size", help="Ray: texts per chunk sent to an actor."),
) -> None:
    """Naive loop (one text per forward, fp32, cache emptied per pair) vs the engine, same texts;
    with --engine ray, the engine in this process vs on a Ray cluster."""
    quiet_libraries()
    from analysis.errors import RmtuiError
    from analysis.scoring import ScoreSettings, bench

    if threads:
        import torch

        torch.set_num_threads(threads)
    if bool(model) == bool(from_config):
        raise RmtuiError("give exactly one of --model or --from-config", "Bad option")
    settings = ScoreSettings(device=device, dtype=dtype, token_budget=token_budget, max_length=max_length,
                             allow_untrained_head=untrained_head, compile=compile_)
    if engine not in ("local", "ray"):
        raise RmtuiError(f"--engine {engine!r}: expected local or ray", "Bad option")
    if engine == "ray":
        if settings.device == "auto" and gpus is not None:
            settings.device = "cuda" if gpus else "cpu"  # the same device in this process as on the actors
        settings.chunk_size = chunk_size
        return _bench_ray(model, from_config, settings, texts, n, ray_address, gpus, actors)
    with _bench_inputs(model, from_config, settings, texts, n) as (spec, rm, frame):
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
                  f"({'agree' if agree else 'DISAGREE'}, tolerance {tol:g}); truncated {r.n_truncated}")
    if not agree:
        raise typer.Exit(1)


@contextlib.contextmanager
def _bench_inputs(model, from_config, settings, texts, n):
    """(spec, the loaded model, the texts) of a bench: a model folder or hub id, or random weights of a
    named shape in a temporary folder that lives as long as the block."""
    from analysis.scoring import load_reward_model, random_model_folder, sample_texts

    with tempfile.TemporaryDirectory(prefix="rmtui-bench-") as tmp:
        spec = model or str(random_model_folder(from_config, f"{tmp}/{from_config}"))
        with console.status(f"loading {spec}"):
            rm = load_reward_model(spec, settings, name=from_config)
        yield spec, rm, sample_texts(texts, n)


def _bench_ray(model, from_config, settings, texts, n, ray_address, gpus, actors) -> None:
    from analysis.scoring import bench_engine
    from analysis.scoring.ray_backend import RayBackend

    with _bench_inputs(model, from_config, settings, texts, n) as (spec, rm, frame):
        _say(f"{len(frame)} texts, model {rm.name} (id {rm.model_id}), {rm.format} format, max length "
             f"{rm.max_length}, {rm.dtype}; in-process on {rm.device}; Ray chunks of {settings.chunk_size}")
        made = []

        def make():  # after the in-process timing: a starting cluster would share its CPUs
            made.append(RayBackend(spec, settings, name=from_config, address=ray_address, gpus=gpus, actors=actors))
            return made[0]

        try:
            with console.status("in-process, then on the Ray cluster"):
                r = bench_engine(rm, make, frame)
        finally:
            for b in made:
                b.close()
    tol = 1e-5 if rm.dtype == "fp32" else 5e-2
    agree = r.max_abs_diff < tol
    _say(f"in-process ({r.local_device}): {r.local_tps:,.1f} texts/s ({r.n} texts in {r.local_s:.2f} s)")
    _say(f"Ray ({r.engine_desc}): {r.engine_tps:,.1f} texts/s end to end ({r.engine_s:.2f} s, the job's and "
         f"actors' start and model load included); {r.worker_tps:,.1f} texts/s per actor while scoring "
         f"({r.busy_s:.2f} actor-s)")
    _say(f"ratio Ray/in-process {r.ratio:.2f}x end to end; rewards max abs diff {r.max_abs_diff:.3g} "
         f"({'agree' if agree else 'DISAGREE'}, tolerance {tol:g})")
    if not agree:
        raise typer.Exit(1)
