"""``rmtui rewrite``: the robustness experiment (rewrite a seeded sample, rescore, refit)."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from .base import DEFAULT_STUDY, STUDY_OPTION_HELP, app, console, quiet_libraries, progress_bar, styled


@app.command()
def rewrite(
    study: str = typer.Option(DEFAULT_STUDY, "--study", "-s", help=STUDY_OPTION_HELP),
    rewriter: str = typer.Option("rules", help="rules | llm (manual rewrites are made in the app)."),
    n: int = typer.Option(500, "--n", min=1, help="Pairs to sample (pairs with both sides scored by every RM)."),
    seed: int = typer.Option(0, help="Sampling and rule seed: same seed, same sample and rewrites."),
    sides: str = typer.Option("chosen,rejected", help="Sides to rewrite: chosen, rejected or both."),
    perturbation: Optional[str] = typer.Option(
        None, help="rules: one perturbation (default: one drawn per text); llm: a style target."),
    endpoint: Optional[str] = typer.Option(None, help="llm: OpenAI-compatible base URL "
                                          "(or RMTUI_LLM_BASE_URL, RMTUI_LLM_ENDPOINT, OPENAI_BASE_URL)."),
    model: Optional[str] = typer.Option(None, help="llm: model name served by the endpoint (or RMTUI_LLM_MODEL)."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help="llm: environment variable holding the API key."),
    concurrency: int = typer.Option(4, min=1, help="llm: parallel requests."),
    similarity_model: Optional[str] = typer.Option(
        None, help="Sentence-embedding model for similarity (default: all-MiniLM-L6-v2, offline)."),
    threshold: float = typer.Option(0.8, help="Similarity below this flags a rewrite that changed the meaning."),
    fit: bool = typer.Option(True, help="Refit the robustness score and sensitivity table afterwards."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Let models that ship their own "
                                           "code run it (needed each time; or RMTUI_TRUST_REMOTE_CODE=1)."),
) -> None:
    """Rewrite a seeded sample of pairs, rescore with every RM, re-featurize, and fit robustness.

    Resumable: rerunning with the same options skips the rewrites already stored.
    """
    quiet_libraries()
    from analysis.rewrite.experiment import fit_robustness, run_experiment
    from analysis.rewrite import make_rewriter
    from analysis.store import open_study

    params = {}
    if rewriter == "llm":
        params = {"endpoint": endpoint, "model": model, "api_key_env": api_key_env}
    rw = make_rewriter(rewriter, perturbation=perturbation, **params)
    side_list = [s.strip() for s in sides.split(",") if s.strip()]
    with open_study(study, create=False) as st:
        if rewriter == "llm":
            rw._study = st
        scorer = None
        if trust_remote_code:  # consent for this command only; the study never grants it
            from analysis.rewrite.experiment import default_scorer
            from analysis.scoring import load_study_models

            scorer = default_scorer(st, load_study_models(st, trust_remote_code=True))
        with progress_bar("rewrites") as prog:
            task = prog.add_task(f"rewrite ({rw.spec})", total=n * len(side_list))
            res = run_experiment(st, rw, n, seed, side_list, progress=lambda k: prog.advance(task, k),
                                 similarity_model=similarity_model, threshold=threshold, concurrency=concurrency,
                                 scorer=scorer)
        console.print(
            f"experiment {res.experiment} ({res.rewriter}): {res.n_sampled:,} pairs of {res.n_candidates:,} "
            f"candidates, {res.n_items:,} rewrites: {res.n_done:,} new, {res.n_cached:,} already stored, "
            f"{res.n_failed:,} failed, {res.n_unchanged:,} unchanged, {res.n_meaning_changed:,} below "
            f"similarity {threshold:g}; {res.seconds:.1f} s")
        if res.stage_seconds:
            console.print("  time per stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in res.stage_seconds.items()))
        for m in res.messages:
            console.print(styled("  ", (m, "yellow")))
        for pid, side, why in res.failures[:5]:
            console.print(styled("  ", ("failed", "yellow"), f" {pid} {side}: {why}"))
        if not fit:
            return
        f = fit_robustness(st, res.experiment)
    console.print(f"robustness fit {f.fit_id}: {f.n:,} rewrites ({f.messages[0]})")
    import pandas as pd

    rob = f.robustness
    if rob.empty or rob["estimate"].isna().all():
        console.print(f"Robustness score: nothing estimable ({f.n} rewrites; " + "; ".join(f.messages[4:7]) + ")")
    for outcome in ("became_misaligned", "became_aligned"):
        rows = rob[(rob["outcome"] == outcome) & (rob["variant"] == "at_risk") & (rob["term"] != "intercept")]
        if not len(rows):
            continue
        n_risk = int(rows["n"].iloc[0]) if rows["n"].notna().any() else 0
        ev = int(rows["events"].iloc[0]) if rows["events"].notna().any() else 0
        table = Table(title=f"Robustness score: LPM of {outcome} on the {n_risk:,} rewrites at risk "
                            f"({ev:,} events; post-D RM, SE clustered by pair; p adjusted: BH)",
                      title_justify="left")
        table.add_column("term (indicator of a flip)", overflow="fold", min_width=28)
        for c in ("events/flips", "estimate", "95% CI", "p", "p (BH)", "note"):
            table.add_column(c, justify="right" if c != "note" else "left", no_wrap=c != "note")
        for r in rows.itertuples():
            cell = "" if pd.isna(r.n_flip) else f"{int(r.events_flip)}/{int(r.n_flip)}"
            if pd.isna(r.estimate):
                table.add_row(r.term, cell, "-", "-", "-", "-", str(r.status))
                continue
            note = "" if r.status == "ok" else ("exact (Fisher)" if str(r.status).startswith("small") else str(r.status))
            table.add_row(r.term, cell, f"{r.estimate:+.3g}", f"[{r.ci_low:+.3g}, {r.ci_high:+.3g}]", f"{r.p:.3g}",
                          "-" if pd.isna(r.p_bh) else f"{r.p_bh:.3g}", note)
        console.print(table)
    sens = f.sensitivity[f.sensitivity["side"] == "all"].copy()
    if len(sens):
        t2 = Table(title="Mean reward change per perturbation (both sides)", title_justify="left")
        for c in ("perturbation", "role", "mean change", "95% CI", "n"):
            t2.add_column(c, justify="left" if c in ("perturbation", "role") else "right")
        sens = sens.sort_values(["role", "mean_change"], key=lambda s: s if s.name == "role" else -s.abs())
        for r in sens.itertuples():
            t2.add_row(str(r.perturbation), str(r.role), f"{r.mean_change:+.3g}",
                       f"[{r.ci_low:+.3g}, {r.ci_high:+.3g}]", str(r.n))
        console.print(t2)
    console.print("flip rates per RM: " + ", ".join(
        f"{r.role}: {r.became_misaligned:.1%} became misaligned, {r.became_aligned:.1%} became aligned"
        for r in f.flip_rates.itertuples()))
