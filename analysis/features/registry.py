"""From a featurizer spec to a featurizer: the one place that knows every implementation.

To add a featurizer: subclass :class:`~analysis.features.base.Featurizer` in a module of its own and
give its spec a branch in :func:`featurizer_class`.
"""

from __future__ import annotations

from typing import Iterable

from analysis.errors import RmtuiError
from analysis.features.base import Featurizer


def featurizer_class(spec: str) -> type:
    """The class a spec builds: ``heuristic`` | ``llm`` (or ``llm:MODEL``) | ``hf:MODEL`` | ``file:PATH``."""
    spec = (spec or "").strip()
    if spec == "heuristic":
        from analysis.features.heuristic import HeuristicFeaturizer

        return HeuristicFeaturizer
    if spec == "proxy":
        from analysis.features.heuristic import ProxyLabelFeaturizer

        return ProxyLabelFeaturizer
    if spec == "llm" or spec.startswith("llm:"):
        from analysis.features.llm_labeler import LLMLabeler

        return LLMLabeler
    if spec.startswith("hf:"):
        from analysis.features.hf import HFClassifierFeaturizer

        return HFClassifierFeaturizer
    if spec.startswith("file:"):
        from analysis.features.importer import FileFeaturizer

        return FileFeaturizer
    raise RmtuiError(f"unknown labeler {spec!r}: use heuristic, proxy, llm, hf:MODEL or file:PATH", "Featurizer")


def unknown_options(spec: str, options: Iterable[str]) -> tuple[list[str], list[str]]:
    """(the options the spec's featurizer does not take, the ones a user may give it), so a misspelled
    option fails when a config is read, not as a TypeError after hours of scoring. ``study`` is passed
    by rmtui itself: always taken, never listed."""
    import inspect

    params = inspect.signature(featurizer_class(spec).__init__).parameters
    from_spec = {"hf:": "model", "file:": "path"}  # the spec names these
    skip = {"self", "study"} | {v for k, v in from_spec.items() if spec.strip().startswith(k)}
    takes = [n for n, p in params.items() if n not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return [o for o in options if o not in takes and o != "study"], takes


def make_featurizer(spec: str, **options) -> Featurizer:
    """Build a featurizer from a spec: ``heuristic`` | ``llm`` (or ``llm:MODEL``) | ``hf:MODEL`` | ``file:PATH``.

    Options go to the featurizer's constructor (``endpoint=`` or ``base_url=``, ``model=``, ``config=``
    for ``llm``; ``label_map=`` for ``hf``; ``study=`` for ``file``, ...); one it does not take is an error.
    """
    spec = (spec or "").strip()
    cls = featurizer_class(spec)
    bad, takes = unknown_options(spec, options)
    if bad:
        raise RmtuiError(f"{spec}: unknown option{'s' if len(bad) > 1 else ''} {', '.join(bad)}; it takes "
                         f"{', '.join(takes)}", "Featurizer")
    if spec.startswith("llm:") and not options.get("model"):
        options["model"] = spec[4:]
    if spec.startswith(("hf:", "file:")):
        return cls(spec.split(":", 1)[1], **options)
    return cls(**options)
