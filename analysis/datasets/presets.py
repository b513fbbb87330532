"""Presets: documented column maps of well-known preference datasets, one TOML file each in
``analysis/resources/presets/`` (data, not code). ``rmtui ingest --preset NAME``; an ``hf:`` name that
matches a preset's ``hf`` patterns gets it without asking.

A preset file holds ``name``, ``hf`` (name patterns, fnmatch), ``description``, ``map`` (a list of
``--map`` items, the same syntax a user types), and optionally ``label``, ``pairs`` and ``featurizer``.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from importlib import resources

from analysis.errors import InputError


@dataclass
class Preset:
    name: str
    hf: list[str]
    description: str
    map: list[str]
    label: str | None = None
    pairs: str | None = None
    featurizer: str | None = None
    comment: str = ""
    extra: dict = field(default_factory=dict)

    def map_items(self) -> list[str]:
        items = list(self.map)
        if self.featurizer:
            items.append(f"featurizer={self.featurizer}")
        return items

    def command(self) -> str:
        return f"--preset {self.name}"


def _load(text: str, fname: str) -> Preset:
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:  # a broken preset file shipped with rmtui
        raise InputError(f"preset {fname}: {e}", "Bad preset") from e
    comment = "\n".join(line[2:] if line.startswith("# ") else line[1:]
                        for line in text.splitlines() if line.startswith("#"))
    return Preset(name=d["name"], hf=list(d.get("hf", [])), description=d.get("description", ""),
                  map=list(d["map"]), label=d.get("label"), pairs=d.get("pairs"),
                  featurizer=d.get("featurizer"), comment=comment)


def all_presets() -> dict[str, Preset]:
    out = {}
    folder = resources.files("analysis.resources").joinpath("presets")
    for f in sorted(folder.iterdir(), key=lambda p: p.name):
        if f.name.endswith(".toml"):
            p = _load(f.read_text("utf-8"), f.name)
            out[p.name] = p
    return out


def get_preset(name: str) -> Preset:
    presets = all_presets()
    key = name.strip()
    if key in presets:
        return presets[key]
    for p in presets.values():  # an hf name given as the preset
        if any(fnmatch.fnmatch(key.lower(), pat.lower()) for pat in p.hf):
            return p
    raise InputError(f"--preset {name!r}: no such preset; known: {', '.join(sorted(presets))}", "Unknown preset")


def preset_for_hf(spec: str) -> Preset | None:
    """The preset whose ``hf`` patterns match ``hf:NAME`` (None when none does)."""
    if not spec.startswith("hf:"):
        return None
    name = spec[3:].lower()
    for p in all_presets().values():
        if any(fnmatch.fnmatch(name, pat.lower()) for pat in p.hf):
            return p
    return None
