"""Building the embedded demonstration reward models (``python -m analysis.models.embedded_build build``).

pre-D is all-MiniLM-L6-v2 (cut to its bottom layers) trained on the helpful subsets of hh-rlhf, post-D
is pre-D trained further on all four; :func:`build_embedded` trains both, writes their deltas (the
trained layers, pooler and head as fp16 safetensors, see analysis/models/embedded.py), verifies the
materialised folders and writes ``build_report.json`` and the README's accuracy table;
:func:`rebuild_post` retrains post-D alone. The runtime that resolves ``embedded:pre``/``post`` is
analysis/models/embedded.py; nothing here runs when a study scores with them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from analysis.models.embedded import (ALL_SUBSETS, BASE_PACKAGE, DELTA, DELTA_META, EMBED_DIR, HELPFUL, ROLES, ROOT, _sha256,
                       base_model_path, embedded_model_path, materialise)


def _progress_logger(log, t_start: float, every_s: float = 30.0):
    """A ``progress(stage, done, total)`` callback that logs at most every ``every_s`` seconds and at the end."""
    last = [0.0]

    def progress(stage, done, total):
        now = time.perf_counter()
        if done == total or now - last[0] > every_s:
            last[0] = now
            log(f"  [{now - t_start:7.1f}s] {stage}: {done}/{total}")

    return progress


def build_command(*, out: str | Path = "sample_data/models", seed: int = 0, max_length: int = 256,
                  keep_layers: int = 3, train_layers: int = 1, epochs_pre: float = 3.0, epochs_post: float = 1.0,
                  lr: float = 3e-4, lr_post: float | None = None, batch_size: int = 16,
                  oversample_pre: dict[str, int] | None = None, oversample_post: dict[str, int] | None = None
                  ) -> str:
    """The command line that rebuilds the embedded models with these settings."""
    def os_arg(flag, d):
        return f" {flag} {','.join(f'{k}={v}' for k, v in d.items())}" if d else ""

    return ("HF_HUB_OFFLINE=1 python -m analysis.models.embedded_build build "
            f"--out {out} --seed {seed} --max-length {max_length} --keep-layers {keep_layers} "
            f"--train-layers {train_layers} --epochs-pre {epochs_pre:g} --epochs-post {epochs_post:g} --lr {lr:g}"
            + (f" --lr-post {lr_post:g}" if lr_post is not None else "") + f" --batch-size {batch_size}"
            + os_arg("--oversample-pre", oversample_pre) + os_arg("--oversample-post", oversample_post))


def build_embedded(out: str | Path = EMBED_DIR, *, seed: int = 0, max_length: int = 256, keep_layers: int = 3,
                   train_layers: int = 1, epochs_pre: float = 3.0, epochs_post: float = 1.0, lr: float = 3e-4,
                   lr_post: float | None = None, batch_size: int = 16,
                   oversample_pre: dict[str, int] | None = None, oversample_post: dict[str, int] | None = None,
                   heldout_frac: float = 0.2, limit: int | None = None,
                   data_dir: str | Path | None = None, verify: bool = True, verify_pairs: int = 200,
                   log=print) -> dict:
    """Train pre-D (helpful subsets) and post-D (pre-D further on all four subsets); write the deltas.

    ``oversample_pre`` / ``oversample_post`` repeat a subset's in-sample pairs that many times per
    epoch of that phase; ``lr_post`` defaults to ``lr``."""
    import tempfile

    import torch
    from safetensors.torch import save_file

    from analysis import __version__
    from analysis.models.base import load_base
    from analysis.models.train import (TRAIN_META, Encoder, FeatureCache, RewardNet, TrainSettings, pairwise_accuracy,
                        round_trainable_to_fp16, text_rewards, train_phase)
    from analysis.models.train_pairs import TRAINED_PAIRS, add_text_keys, mark_split, pairs_from_files, write_trained_pairs

    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    command = build_command(seed=seed, max_length=max_length, keep_layers=keep_layers, train_layers=train_layers,
                            epochs_pre=epochs_pre, epochs_post=epochs_post, lr=lr, lr_post=lr_post,
                            batch_size=batch_size, oversample_pre=oversample_pre, oversample_post=oversample_post)
    out = Path(out)
    previous = None
    if (out / "build_report.json").exists():
        try:
            old = json.loads((out / "build_report.json").read_text())
            previous = {"command": old.get("command"), "command_post": old.get("command_post"),
                        "accuracy": {k: old["accuracy_cached"][k] for k in ("pre", "post")},
                        "build_seconds": old.get("build_seconds")}
        except Exception:  # pragma: no cover - a damaged report is simply not carried over
            previous = None
    data_dir = Path(data_dir) if data_dir else ROOT / "sample_data" / "hh-rlhf"
    files = sorted(data_dir.glob("*.jsonl.gz"))
    frame = pairs_from_files(files)
    if limit:
        frame = frame.groupby("subset", group_keys=False).head(limit).reset_index(drop=True)
    frame = mark_split(add_text_keys(frame), seed, heldout_frac)
    settings = TrainSettings(epochs=epochs_pre, lr=lr, batch_size=batch_size, max_length=max_length,
                             train_layers=train_layers, keep_layers=keep_layers, seed=seed,
                             heldout_frac=heldout_frac, cache_dtype="float32")
    torch.manual_seed(seed)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model, tok = load_base("embedded:base", settings)
    net = RewardNet(model, train_layers)
    enc = Encoder(tok, max_length)
    enc.add(list(frame["chosen_key"]) + list(frame["rejected_key"]),
            list(frame["chosen_context"]) + list(frame["rejected_context"]),
            list(frame["chosen_response"]) + list(frame["rejected_response"]))
    log(f"{len(frame)} pairs, {len(enc.ids)} distinct texts, {enc.n_truncated} cut to {max_length} tokens; "
        f"mean length {sum(map(len, enc.ids.values())) / max(1, len(enc.ids)):.1f} tokens")

    progress = _progress_logger(log, t_start)

    cache = FeatureCache(net, enc, settings.cache_dtype)  # fp32: cached scores equal the saved model's
    t = time.perf_counter()
    cache.fill(list(enc.ids), settings.eval_batch_tokens, progress)
    t_cache = time.perf_counter() - t
    held = frame[frame["heldout"]]
    held_keys = list(held["chosen_key"]) + list(held["rejected_key"])
    helpful_train = frame[~frame["heldout"] & frame["subset"].isin(HELPFUL)]
    all_train = frame[~frame["heldout"]]
    _, oversample_pre, _, helpful_rep = post_training_frame(frame, HELPFUL, oversample_pre,
                                                            what="build (pre-D)", flag="--oversample-pre")
    _, oversample_post, _, all_rep = post_training_frame(frame, ("all",), oversample_post,
                                                         what="build (post-D)", flag="--oversample-post")

    def evaluate(label):
        r = text_rewards(net, enc, held_keys, cache=cache)
        acc = pairwise_accuracy(held, r)
        log(f"{label}: " + ", ".join(f"{s} {a:.3f}" for s, a in zip(acc["subset"], acc["accuracy"])))
        return acc

    results: dict = {"base": evaluate("base (random head)").to_dict(orient="records")}
    phases = {}
    st_pre = train_phase(net, enc, cache, helpful_rep, settings, name="pre-D", progress=progress)
    round_trainable_to_fp16(net)
    phases["pre"] = st_pre
    results["pre"] = evaluate("pre-D").to_dict(orient="records")
    delta_pre = {k: v.detach().to(torch.float16).contiguous().clone() for k, v in net.trainable_state().items()}
    cfg_pre = model.config.to_dict()
    settings_post = TrainSettings(**{**settings.as_dict(), "epochs": epochs_post, "seed": seed + 1,
                                     "lr": lr if lr_post is None else lr_post})
    st_post = train_phase(net, enc, cache, all_rep, settings_post, name="post-D", progress=progress)
    round_trainable_to_fp16(net)
    phases["post"] = st_post
    results["post"] = evaluate("post-D").to_dict(orient="records")
    delta_post = {k: v.detach().to(torch.float16).contiguous().clone() for k, v in net.trainable_state().items()}
    build_seconds = time.perf_counter() - t_start

    base = base_model_path()
    try:
        from importlib.metadata import version as _v

        base_version = _v(BASE_PACKAGE)
    except Exception:  # pragma: no cover
        base_version = "unknown"
    base_sha = _sha256(base / "model.safetensors")
    common = {
        "base_package": BASE_PACKAGE, "base_version": base_version, "base_sha256": base_sha,
        "keep_layers": keep_layers, "train_layers": train_layers, "max_length": max_length, "format": "pair",
        "truncation_side": "left", "seed": seed, "heldout_frac": heldout_frac, "rmtui_version": __version__,
    }
    roles = {
        "pre": (delta_pre, cfg_pre, helpful_train, st_pre, list(HELPFUL), settings, oversample_pre),
        "post": (delta_post, cfg_pre, all_train, st_post, list(ALL_SUBSETS), settings_post, oversample_post),
    }
    out.mkdir(parents=True, exist_ok=True)
    for role, (delta, cfg, trained, st, subsets, sett, over) in roles.items():
        d = out / ROLES[role]
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():
            if old.is_file():
                old.unlink()
        save_file(delta, str(d / DELTA), metadata={"format": "pt"})
        cfg = dict(cfg)
        cfg["architectures"] = ["BertForSequenceClassification"]
        cfg.pop("_name_or_path", None)
        cfg.pop("transformers_version", None)
        (d / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True, default=str) + "\n")
        meta = {**common, "name": f"rmtui-minilm-{ROLES[role]}", "role": role, "trained_on_subsets": subsets,
                "init": "embedded:base" if role == "pre" else "embedded:pre",
                "oversample": over, "delta_tensors": sorted(delta)}
        (d / DELTA_META).write_text(json.dumps(meta, indent=2) + "\n")
        train_meta = {
            "rmtui": "embedded build", "base": f"{BASE_PACKAGE} (first {keep_layers} layers)",
            "format": "pair", "truncation_side": "left", "settings": sett.as_dict(),
            "trained_on_subsets": subsets, "oversample": over,
            "n_train_pairs": len(trained), "n_heldout_pairs": len(held),
            "heldout_accuracy": results[role], "train": st.__dict__,
        }
        (d / TRAIN_META).write_text(json.dumps(train_meta, indent=2, default=str) + "\n")
        write_trained_pairs(d / TRAINED_PAIRS, trained)

    report = {
        "seed": seed, "settings": settings.as_dict(), "epochs_post": epochs_post,
        "post_settings": settings_post.as_dict(), "oversample_pre": oversample_pre,
        "post_oversample": oversample_post, "post_trained_on": list(ALL_SUBSETS),
        "load_avg_start": round(load_start, 2),
        "n_pairs": len(frame), "n_heldout": int(frame["heldout"].sum()),
        "heldout_per_subset": frame[frame["heldout"]].groupby("subset").size().to_dict(),
        "train_per_subset": frame[~frame["heldout"]].groupby("subset").size().to_dict(),
        "n_texts": len(enc.ids), "n_texts_truncated": enc.n_truncated,
        "seconds_frozen_cache": round(t_cache, 1),
        "seconds_pre": round(st_pre.seconds, 1), "seconds_post": round(st_post.seconds, 1),
        "build_seconds": round(build_seconds, 1), "accuracy_cached": results,
        "phases": {k: v.__dict__ for k, v in phases.items()},
    }
    if verify:  # materialise into a scratch cache; score held-out pairs with plain from_pretrained
        t = time.perf_counter()
        sample = held.sample(n=min(len(held), verify_pairs), random_state=seed)
        report["verify"] = {}
        with tempfile.TemporaryDirectory() as scratch:
            for role, delta in (("pre", delta_pre), ("post", delta_post)):
                folder = materialise(out / ROLES[role], Path(scratch))
                with torch.no_grad():  # the in-memory model with this role's weights
                    state = net.model.state_dict()
                    for k, v in delta.items():
                        state[k].copy_(v.float())
                mine = text_rewards(net, enc, list(sample["chosen_key"]) + list(sample["rejected_key"]), cache=cache)
                theirs, acc = _score_folder(folder, sample)
                diff = max(abs(mine[k] - theirs[k]) for k in mine)
                report["verify"][role] = {"pairs": len(sample), "max_abs_reward_diff": diff,
                                          "accuracy": acc.to_dict(orient="records")}
                log(f"{role}: materialised folder vs build, {len(sample)} held-out pairs: max |reward diff| {diff:.2e}")
        report["seconds_verify"] = round(time.perf_counter() - t, 1)
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    report["cpu_seconds"] = round(ru.ru_utime + ru.ru_stime, 1)
    report["load_avg_end"] = round(os.getloadavg()[0], 2)
    report["wall_seconds_total"] = round(time.perf_counter() - t_start, 1)
    report["command"] = command
    if previous:
        report["previous_build"] = previous
    (out / "build_report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    write_readme(out, report)
    return report


def accuracy_table(report: dict, key: str = "accuracy_cached") -> str:
    """Markdown table: held-out pairwise accuracy per subset for base, pre-D and post-D."""
    acc = report[key]
    rows = {}
    for model in ("base", "pre", "post"):
        for r in acc[model]:
            rows.setdefault(r["subset"], {"n": r["n"]})[model] = r["accuracy"]
    order = [s for s in ("harmless-base",) + HELPFUL if s in rows] + ["all"]
    lines = ["| subset (held out) | pairs | base, random head | pre-D | post-D | post - pre |",
             "|---|---:|---:|---:|---:|---:|"]

    def cell(a: float, n: int) -> str:  # accuracy and the half-width of its 95 % normal interval
        return f"{a:.3f} ±{1.96 * (a * (1 - a) / max(n, 1)) ** 0.5:.3f}"

    for s in order:
        r = rows[s]
        lines.append(f"| {s} | {r['n']:,} | {cell(r['base'], r['n'])} | {cell(r['pre'], r['n'])} | "
                     f"{cell(r['post'], r['n'])} | {100 * (r['post'] - r['pre']):+.1f} pts |")
    return "\n".join(lines)


def _over(over: dict | None) -> str:
    return (", each epoch repeating " + ", ".join(f"{k} {v}x" for k, v in over.items())) if over else ""


def _ties(report: dict) -> str:
    acc = report["accuracy_cached"]
    return ", ".join(f"{m} {sum(r['ties'] for r in acc[m] if r['subset'] != 'all')}" for m in ("base", "pre", "post"))


def write_readme(out: str | Path, report: dict) -> None:
    """Fill the generated part of sample_data/models/README.md (between the markers) from the report."""
    out = Path(out)
    readme = out / "README.md"
    text = readme.read_text() if readme.exists() else "<!-- build:start -->\n<!-- build:end -->\n"
    if "<!-- build:start -->" not in text:
        text += "\n<!-- build:start -->\n<!-- build:end -->\n"
    held = report.get("heldout_per_subset", {})
    trained = report.get("train_per_subset", {})
    s = report["settings"]
    body = [
        "<!-- build:start -->",
        "### Held-out pairwise accuracy (generated from build_report.json)",
        "",
        accuracy_table(report),
        "",
        "Accuracy: the share of held-out, non-identical pairs where the model gives the chosen response the",
        f"higher reward (ties count as misses; ties: {_ties(report)}). The base is all-MiniLM-L6-v2's first "
        f"{s['keep_layers']} layers with a freshly initialised (seed {report['seed']}) reward head: it has "
        "learned nothing about preferences, so its numbers are chance plus noise.",
        "",
        f"- Seed: {report['seed']}; held out: {report['n_heldout']:,} of {report['n_pairs']:,} pairs "
        f"({', '.join(f'{k} {v:,}' for k, v in held.items())}); in-sample: "
        f"{', '.join(f'{k} {v:,}' for k, v in trained.items())}.",
        f"- Settings: max_length {s['max_length']} (context cut from the left), first {s['keep_layers']} encoder layers "
        f"of the base, top {s['train_layers']} trained with the pooler and head, batch {s['batch_size']} pairs; "
        f"pre-D {s['epochs']:g} epochs at lr {s['lr']:g}"
        + _over(report.get("oversample_pre")) + f"; post-D {report.get('epochs_post'):g} epoch(s) at lr "
        f"{(report.get('post_settings') or s)['lr']:g}" + _over(report.get("post_oversample")) + ".",
        f"- Build time: {report['build_seconds'] / 60:.1f} min wall clock for both models "
        f"(frozen-layer pass {report['seconds_frozen_cache']:.0f} s, pre-D {report['seconds_pre']:.0f} s, post-D "
        f"{report['seconds_post']:.0f} s), plus {report.get('seconds_verify', 0):.0f} s of verification; "
        + (f"{report['cpu_seconds'] / 60:.1f} CPU-minutes in all; " if report.get("cpu_seconds") else "")
        + (f"on 2 CPU cores, load average {report['load_avg_start']:.1f} at the start and "
           f"{report.get('load_avg_end', 0):.1f} at the end." if "load_avg_start" in report
           else "on 2 CPU cores shared with other jobs."),
    ]
    prev = report.get("previous_build")
    if prev:
        def accs(m):
            return ", ".join(f"{r['subset']} {r['accuracy']:.3f}" for r in prev["accuracy"][m] if r["subset"] != "all")

        body.append(f"- The build this one replaced (`previous_build` in build_report.json): pre-D {accs('pre')}; "
                    f"post-D {accs('post')}.")
    ver = report.get("verify") or {}
    if ver:
        body.append("- Verified: each model was materialised from the stored delta and loaded with plain "
                    "`AutoModelForSequenceClassification.from_pretrained`; on "
                    f"{ver['pre']['pairs']} held-out pairs its rewards equal the build's to within "
                    f"{max(v['max_abs_reward_diff'] for v in ver.values()):.1e}.")
    if report.get("seconds_post_rebuild_total"):
        over = report.get("post_oversample") or {}
        body.append(f"- post-D rebuilt from the stored pre-D on {', '.join(report['post_trained_on'])} "
                    + (f"(each epoch repeats {', '.join(f'{k} {v}x' for k, v in over.items())}; " if over else "(")
                    + f"{report['epochs_post']:g} epochs, lr {report['post_settings']['lr']:g}): "
                    f"{report['seconds_post_rebuild_total'] / 60:.1f} min wall clock "
                    f"({report['cpu_seconds_post_rebuild'] / 60:.1f} CPU-minutes), frozen-layer pass over the "
                    f"texts it needs {report['seconds_post_rebuild_cache']:.0f} s, training {report['seconds_post']:.0f} s. "
                    "The first build's post-D (all of D) is in build_report.json as `first_post_attempt`"
                    + (", earlier rebuilds as `replaced_post_rebuilds`." if report.get("replaced_post_rebuilds") else "."))
    cmds = report.get("command", "") + ("\n" + report["command_post"] if report.get("command_post") else "")
    body += ["", "Commands (the second rebuilds post-D only):" if report.get("command_post") else "Command:",
             "", "```", cmds, "```", "<!-- build:end -->"]
    start, end = text.index("<!-- build:start -->"), text.index("<!-- build:end -->") + len("<!-- build:end -->")
    readme.write_text(text[:start] + "\n".join(body) + text[end:])


def _score_folder(folder: Path, held):
    """Held-out accuracy of a saved folder, loaded the way users load it."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from analysis.models.train import Encoder, RewardNet, pairwise_accuracy, text_rewards

    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    net = RewardNet(model, -1)
    enc = Encoder(tok, tok.model_max_length)
    enc.add(list(held["chosen_key"]) + list(held["rejected_key"]),
            list(held["chosen_context"]) + list(held["rejected_context"]),
            list(held["chosen_response"]) + list(held["rejected_response"]))
    r = text_rewards(net, enc, list(held["chosen_key"]) + list(held["rejected_key"]))
    return r, pairwise_accuracy(held, r)


def _main(argv: list[str] | None = None) -> None:
    import argparse

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    ap = argparse.ArgumentParser(prog="python -m analysis.models.embedded")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="train and write the embedded pre-D/post-D models")
    b.add_argument("--out", default=str(EMBED_DIR))
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--max-length", type=int, default=256)
    b.add_argument("--keep-layers", type=int, default=3)
    b.add_argument("--train-layers", type=int, default=1)
    b.add_argument("--epochs-pre", type=float, default=3.0)
    b.add_argument("--epochs-post", type=float, default=1.0)
    b.add_argument("--lr", type=float, default=3e-4)
    b.add_argument("--lr-post", type=float, default=None, help="post-D learning rate (default: --lr)")
    b.add_argument("--batch-size", type=int, default=16)
    b.add_argument("--oversample-pre", default="helpful-online=2",
                   help="repeat a helpful subset's pairs per pre-D epoch ('' for none)")
    b.add_argument("--oversample-post", default="harmless-base=4",
                   help="repeat a subset's pairs per post-D epoch ('' for none)")
    b.add_argument("--limit", type=int, default=None, help="pairs per subset (a quick trial)")
    b.add_argument("--no-verify", action="store_true")
    bp = sub.add_parser("build-post", help="retrain post-D from the stored pre-D on some subsets of D")
    bp.add_argument("--out", default=str(EMBED_DIR))
    bp.add_argument("--subsets", default="harmless-base", help="comma-separated subsets of D, or 'all'")
    bp.add_argument("--oversample", default="", help="repeat a subset's pairs per epoch, e.g. harmless-base=3")
    bp.add_argument("--epochs", type=float, default=3.0)
    bp.add_argument("--lr", type=float, default=3e-4)
    bp.add_argument("--batch-size", type=int, default=16)
    r = sub.add_parser("readme", help="regenerate the table in README.md from build_report.json")
    r.add_argument("--out", default=str(EMBED_DIR))
    m = sub.add_parser("path", help="materialise and print the folder of embedded:pre|post")
    m.add_argument("role", choices=sorted(ROLES))
    args = ap.parse_args(argv)
    if args.cmd == "build":
        rep = build_embedded(args.out, seed=args.seed, max_length=args.max_length, keep_layers=args.keep_layers,
                             train_layers=args.train_layers, epochs_pre=args.epochs_pre,
                             epochs_post=args.epochs_post, lr=args.lr, lr_post=args.lr_post,
                             batch_size=args.batch_size,
                             oversample_pre=parse_oversample(args.oversample_pre, "--oversample-pre"),
                             oversample_post=parse_oversample(args.oversample_post, "--oversample-post"),
                             limit=args.limit, verify=not args.no_verify,
                             log=lambda s: print(s, flush=True))
        print(f"build {rep['build_seconds']:.0f} s (+ verify {rep.get('seconds_verify', 0):.0f} s)", flush=True)
    elif args.cmd == "build-post":
        rep = rebuild_post(args.out, subsets=tuple(x for x in args.subsets.split(",") if x), epochs=args.epochs,
                           lr=args.lr, batch_size=args.batch_size, oversample=parse_oversample(args.oversample),
                           log=lambda s: print(s, flush=True))
        print(f"post-D rebuilt in {rep['seconds_post_rebuild_total']:.0f} s", flush=True)
    elif args.cmd == "readme":
        write_readme(args.out, json.loads((Path(args.out) / "build_report.json").read_text()))
    else:
        print(embedded_model_path(args.role))



def parse_oversample(text: str, flag: str = "--oversample") -> dict[str, int]:
    """``"harmless-base=3,helpful-base=2"`` -> ``{"harmless-base": 3, "helpful-base": 2}``."""
    from analysis.errors import InputError

    out: dict[str, int] = {}
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        name, sep, factor = item.partition("=")
        try:
            k = int(factor)
        except ValueError:
            k = 0
        if not sep or not name or k < 1:
            raise InputError(f"{flag}: expected SUBSET=N with N >= 1, got {item!r}", f"Bad {flag}")
        out[name.strip()] = k
    return out


def post_training_frame(frame, subsets, oversample=None, *, what: str = "build-post", flag: str = "--oversample"):
    """The in-sample pairs a phase trains on: ``(subsets, oversample, unique pairs, pairs per epoch)``.
    ``subsets == ("all",)`` means every subset in ``frame``; a subset in ``oversample`` appears that many
    times per epoch. Unknown subset names are an InputError."""
    import pandas as pd

    from analysis.errors import InputError

    subsets = tuple(subsets)
    if subsets == ("all",):
        subsets = tuple(sorted(frame["subset"].unique()))
    oversample = {k: v for k, v in (oversample or {}).items() if v != 1}
    known = set(frame["subset"])
    unknown = sorted((set(subsets) | set(oversample)) - known)
    if unknown:
        raise InputError(f"{what}: unknown subset(s) {', '.join(unknown)}; the data has "
                         f"{', '.join(sorted(known))}", "Unknown subset")
    if set(oversample) - set(subsets):
        raise InputError(f"{what}: {flag} names {', '.join(sorted(set(oversample) - set(subsets)))}, "
                         f"which is not among the subsets it trains on ({', '.join(subsets)})", f"Bad {flag}")
    train_f = frame[~frame["heldout"] & frame["subset"].isin(list(subsets))]
    train_rep = pd.concat([train_f] + [train_f[train_f["subset"] == k] for k, v in oversample.items()
                                       for _ in range(v - 1)])
    return subsets, oversample, train_f, train_rep


def rebuild_post(out: str | Path = EMBED_DIR, *, subsets: tuple[str, ...] = ("harmless-base",), epochs: float = 3.0,
                 lr: float = 3e-4, batch_size: int = 16, oversample: dict[str, int] | None = None,
                 log=print) -> dict:
    """Retrain post-D from the stored pre-D on the in-sample pairs of ``subsets`` (``("all",)``: all of D),
    each epoch repeating the pairs of a subset in ``oversample`` that many times, keeping the build's seed,
    split, max_length and layers. Rewrites ``post-d/`` and the post-D entries of build_report.json."""
    import resource
    import tempfile

    import torch
    from safetensors.torch import save_file

    from analysis.models.base import load_base
    from analysis.models.train import (TRAIN_META, Encoder, FeatureCache, RewardNet, TrainSettings, pairwise_accuracy,
                        round_trainable_to_fp16, text_rewards, train_phase)
    from analysis.models.train_pairs import TRAINED_PAIRS, add_text_keys, mark_split, pairs_from_files, write_trained_pairs

    t_start = time.perf_counter()
    out = Path(out)
    report = json.loads((out / "build_report.json").read_text())
    seed, s0 = report["seed"], report["settings"]
    frame = pairs_from_files(sorted((ROOT / "sample_data" / "hh-rlhf").glob("*.jsonl.gz")))
    frame = mark_split(add_text_keys(frame), seed, s0["heldout_frac"])
    held = frame[frame["heldout"]]
    subsets, oversample, train_f, train_rep = post_training_frame(frame, subsets, oversample)
    all_in = frame[~frame["heldout"]]
    settings = TrainSettings(**{**s0, "epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed + 1})
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as scratch:
        pre_folder = materialise(out / ROLES["pre"], Path(scratch))
        model, tok = load_base(str(pre_folder), settings)
    net = RewardNet(model, settings.train_layers)
    enc = Encoder(tok, settings.max_length)
    need = pd_concat(train_f, held)
    enc.add(list(need["chosen_key"]) + list(need["rejected_key"]), list(need["chosen_context"]) + list(need["rejected_context"]),
            list(need["chosen_response"]) + list(need["rejected_response"]))
    progress = _progress_logger(log, t_start)

    cache = FeatureCache(net, enc, "float32")
    cache.fill(list(enc.ids), settings.eval_batch_tokens, progress)
    t_cache = time.perf_counter() - t_start
    held_keys = list(held["chosen_key"]) + list(held["rejected_key"])
    check = pairwise_accuracy(held, text_rewards(net, enc, held_keys, cache=cache))
    log("pre-D (reloaded): " + ", ".join(f"{s} {a:.3f}" for s, a in zip(check["subset"], check["accuracy"])))
    log(f"training on {len(train_f)} in-sample pairs of {', '.join(subsets)}"
        + (f", oversampled {oversample}: {len(train_rep)} pairs per epoch" if oversample else ""))
    st = train_phase(net, enc, cache, train_rep, settings, name="post-D", progress=progress)
    round_trainable_to_fp16(net)
    acc = pairwise_accuracy(held, text_rewards(net, enc, held_keys, cache=cache))
    log("post-D: " + ", ".join(f"{s} {a:.3f}" for s, a in zip(acc["subset"], acc["accuracy"])))
    delta = {k: v.detach().to(torch.float16).contiguous().clone() for k, v in net.trainable_state().items()}
    d = out / ROLES["post"]
    meta = json.loads((d / DELTA_META).read_text())
    meta["trained_on_subsets"] = list(subsets)
    meta["oversample"] = oversample
    meta["note"] = ("pre-D trained further on the in-sample pairs of " + ", ".join(subsets)
                    + (f" (oversampled per epoch: {oversample})" if oversample else "")
                    + "; with pre-D's helpful training, post-D has been trained on all of D")
    for old in d.iterdir():
        if old.is_file():
            old.unlink()
    save_file(delta, str(d / DELTA), metadata={"format": "pt"})
    (d / "config.json").write_text((out / ROLES["pre"] / "config.json").read_text())
    (d / DELTA_META).write_text(json.dumps(meta, indent=2) + "\n")
    (d / TRAIN_META).write_text(json.dumps({
        "rmtui": "embedded build (post-D retrained from pre-D)", "init": "embedded:pre", "settings": settings.as_dict(),
        "trained_on_subsets": list(subsets), "oversample": oversample, "n_train_pairs": len(train_f),
        "n_train_pairs_per_epoch": len(train_rep), "n_heldout_pairs": len(held),
        "heldout_accuracy": acc.to_dict(orient="records"), "train": st.__dict__}, indent=2, default=str) + "\n")
    write_trained_pairs(d / TRAINED_PAIRS, all_in)  # cumulative: everything pre-D and post-D trained on (D)
    # verify through a materialised folder
    sample = held.sample(n=min(len(held), 200), random_state=seed)
    with tempfile.TemporaryDirectory() as scratch:
        folder = materialise(d, Path(scratch))
        mine = text_rewards(net, enc, list(sample["chosen_key"]) + list(sample["rejected_key"]), cache=cache)
        theirs, vacc = _score_folder(folder, sample)
    diff = max(abs(mine[k] - theirs[k]) for k in mine)
    log(f"post: materialised folder vs build, {len(sample)} held-out pairs: max |reward diff| {diff:.2e}")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    if "first_post_attempt" not in report:
        report["first_post_attempt"] = {
            "what": "post-D = pre-D trained 2 more epochs on all in-sample pairs of D (lr 2e-4): harmless-base did not move",
            "accuracy": report["accuracy_cached"]["post"], "phase": report["phases"]["post"],
            "seconds": report["seconds_post"]}
    else:  # keep the post-D this rebuild replaces
        report.setdefault("replaced_post_rebuilds", []).append({
            "command": report.get("command_post"), "trained_on": report.get("post_trained_on"),
            "oversample": report.get("post_oversample", {}), "settings": report.get("post_settings"),
            "accuracy": report["accuracy_cached"]["post"], "phase": report["phases"]["post"],
            "seconds_total": report.get("seconds_post_rebuild_total")})
    report["accuracy_cached"]["post"] = acc.to_dict(orient="records")
    report["phases"]["post"] = st.__dict__
    report["epochs_post"] = epochs
    report["post_settings"] = settings.as_dict()
    report["post_trained_on"] = list(subsets)
    report["post_oversample"] = oversample
    report["seconds_post"] = round(st.seconds, 1)
    report["seconds_post_rebuild_total"] = round(time.perf_counter() - t_start, 1)
    report["seconds_post_rebuild_cache"] = round(t_cache, 1)
    report["cpu_seconds_post_rebuild"] = round(ru.ru_utime + ru.ru_stime, 1)
    report.setdefault("verify", {})["post"] = {"pairs": len(sample), "max_abs_reward_diff": diff,
                                               "accuracy": vacc.to_dict(orient="records")}
    report["command_post"] = (f"HF_HUB_OFFLINE=1 nice -n 5 python -m analysis.models.embedded_build build-post --out sample_data/models "
                              f"--subsets {','.join(subsets)} "
                              + (f"--oversample {','.join(f'{k}={v}' for k, v in oversample.items())} " if oversample else "")
                              + f"--epochs {epochs:g} --lr {lr:g} --batch-size {batch_size}")
    (out / "build_report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    write_readme(out, report)
    return report


def pd_concat(*frames):
    import pandas as pd

    return pd.concat(frames).drop_duplicates("pair_id")


if __name__ == "__main__":
    _main()
