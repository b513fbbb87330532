"""``rmtui bench gpu``: the scoring engine's figures on a GPU (issue 28): the deberta-v3-large shape at
2,048 texts x 256 tokens in bf16, eager and compiled, with and without the fused attention, and an
8B decoder-shaped RM, against a bar of 1,500 texts/s. Runs on a CPU at a small size too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .base import bench_app, console, quiet_libraries, styled


def _say(*args) -> None:
    console.print(*args, soft_wrap=True)


def _mib(b: int | None) -> str:
    return "" if b is None else f"{b / 2**20:,.0f}"


@bench_app.command("gpu")
def bench_gpu(
    device: str = typer.Option("auto", "--device", help="auto (cuda when a GPU is at hand, else cpu) | cuda | cpu."),
    n: int = typer.Option(2048, "--n", min=1, help="Texts per row."),
    tokens: int = typer.Option(256, "--tokens", min=4, help="Tokens per text, exactly (synthetic texts)."),
    shape: str = typer.Option("deberta-v3-large", "--shape", help="Encoder shape (random weights): "
                              "deberta-v3-large | deberta-v3-base | tiny-deberta."),
    decoder_shape: str = typer.Option("llama-8b", "--decoder-shape", help="Decoder shape (random weights): "
                                      "llama-8b | tiny-llama | none (skip)."),
    decoder_n: Optional[int] = typer.Option(None, "--decoder-n", min=1, help="Texts for the decoder's row "
                                            "(default: --n)."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (bf16 on cuda, fp32 on cpu) | bf16 | fp16 | fp32."),
    skip_compile: bool = typer.Option(False, "--skip-compile", help="Leave out the torch.compile rows."),
    bar: float = typer.Option(1500.0, "--bar", help="Texts/s the encoder's rows must reach (on a GPU only)."),
    token_budget: Optional[int] = typer.Option(None, "--token-budget", min=1, help="Padded tokens per batch "
                                               "(default: 16384 on cuda, 4096 on cpu)."),
    layers: Optional[int] = typer.Option(None, "--layers", min=1, help="Keep the shapes' widths with N layers "
                                         "(a quick run on a CPU)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write every row (and the run's settings) here."),
) -> None:
    """Texts/s and peak memory of the engine at a fixed text shape: an encoder eager and compiled, fused
    DeBERTa attention on and off, and a decoder eager; rewards compared across the rows."""
    quiet_libraries()
    import torch

    from analysis.errors import RmtuiError
    from analysis.scoring.bench import bench_matrix

    dec = None if decoder_shape.strip().lower() in ("", "none", "-") else decoder_shape
    if json_path is not None and json_path.parent and not json_path.parent.exists():
        raise RmtuiError(f"--json {json_path}: no folder {json_path.parent}", "Bad option")
    rows = []

    def write_json(done) -> None:
        if json_path is None:
            return
        dev = done[0].device if done else device
        json_path.write_text(json.dumps({
            "device": dev, "device_name": torch.cuda.get_device_name() if dev == "cuda" else "CPU",
            "torch": torch.__version__, "bar": bar, "bar_applies": dev == "cuda",
            "rows": [r.record() for r in done]}, indent=2) + "\n")

    def on_row(row) -> None:  # the JSON after every row: a run cut short by a time limit keeps its rows
        rows.append(row)
        write_json(rows)
        what = (f"error: {row.error}" if row.error else
                f"{row.texts_per_s:,.1f} texts/s ({row.seconds:.2f} s, warm-up {row.warmup_s:.1f} s)")
        _say(f"{row.shape} {row.label}: {what}")

    with console.status(f"bench gpu: {shape}" + (f" and {dec}" if dec else "")):
        out = bench_matrix(shape=shape, decoder_shape=dec, n=n, tokens=tokens, device=device, dtype=dtype,
                           compile=not skip_compile, bar=bar, token_budget=token_budget, decoder_n=decoder_n,
                           layers=layers, on_row=on_row)
    dev = out[0].device if out else device
    name = torch.cuda.get_device_name() if dev == "cuda" else "CPU"
    _table(out, dev, name, bar)
    if json_path is not None:
        write_json(out)
        _say(f"rows written to {json_path}")
    failed = [r for r in out if r.error]
    off = [r for r in out if not r.error and r.agree is False]
    if failed or off:
        parts = [f"{r.shape} {r.label}: {r.error}" for r in failed]
        parts += [f"{r.shape} {r.label}: rewards differ from the first row by {r.rel_diff:.3g} of their spread"
                  for r in off]
        raise RmtuiError(f"{len(parts)} row(s) failed: " + "; ".join(parts), "Bench")


def _table(rows, device: str, name: str, bar: float) -> None:
    """One table per model (fits 80 columns): engine, texts/s, seconds, warm-up, peak memory, max |diff|,
    the bar's verdict."""
    from rich.table import Table

    for shape in dict.fromkeys(r.shape for r in rows):
        group = [r for r in rows if r.shape == shape]
        g = group[0]
        t = Table(title=f"{shape} on {name}: {g.n:,} texts x {g.tokens} tokens, {g.dtype}", title_justify="left",
                  box=None, padding=(0, 1), show_edge=False, pad_edge=False)
        for col, just in (("engine", "left"), ("texts/s", "right"), ("s", "right"), ("warm-up s", "right"),
                          ("peak MiB", "right"), ("max |diff|", "right"), ("bar", "left")):
            t.add_column(col, justify=just, no_wrap=True)
        for r in group:
            if r.error:
                t.add_row(r.label, "", "", "", "", "", "error")
                continue
            verdict = ("pass" if r.passed else "FAIL") if r.passed is not None else (
                "GPU only" if device != "cuda" else "n/a")
            t.add_row(r.label, f"{r.texts_per_s:,.1f}", f"{r.seconds:.2f}", f"{r.warmup_s:.1f}",
                      _mib(r.peak_memory_bytes), f"{r.max_abs_diff:.3g}", verdict)
        _say(t)
    for r in rows:
        if r.error:
            _say(styled((f"{r.shape} {r.label}: ", "bold red"), r.error))
    if rows:
        kind = rows[0].peak_memory_kind
        _say(f"peak memory: {kind}" + (" (of the process so far: it only grows)" if kind == "process peak RSS"
                                        else " during the timed pass") +
             "; max |diff|: of rewards, to the first row of the same model; "
             f"bar: {bar:,.0f} texts/s for the encoder's rows" + ("" if device != "cuda" else
                                                                  " (n/a: the decoder's row)"))
    if device != "cuda":
        _say(styled((f"no GPU here ({name}): bar applies on GPU only; these are CPU figures", "yellow")))
