"""rmtui's analysis backend, laid out by the stage data flows through (docs/architecture.md):

``datasets`` -> ``models`` -> ``scoring`` -> ``features`` -> ``rewrite`` -> ``fit`` -> ``report``, run by
``pipeline``; ``store`` (the study file, the only SQL) and ``metrics`` (pure statistics) at the ground;
``llm`` the chat client; the shared top modules ``errors``, ``hashing``, ``textsafe``, ``choices``.
Nothing in this package imports Textual or Rich.

Modules that moved when the package was laid out by stage still import under their former names
(``analysis.data``, ``analysis.study_fit``, ...): :data:`MOVED` maps each to its place, and the finder
below hands out the same module object, so scripts written against the old names keep working.
"""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

MOVED = {
    "analysis.data": "analysis.datasets.readers",
    "analysis.shapes": "analysis.datasets.shapes",
    "analysis.presets": "analysis.datasets.presets",
    "analysis.peek": "analysis.datasets.peek",
    "analysis.ingest": "analysis.datasets.ingest",
    "analysis.human": "analysis.datasets.human",
    "analysis.synth": "analysis.datasets.synth",
    "analysis.embedded": "analysis.models.embedded",
    "analysis.embedded_build": "analysis.models.embedded_build",
    "analysis.train": "analysis.models.train",
    "analysis.train_pairs": "analysis.models.train_pairs",
    "analysis.similarity": "analysis.features.similarity",
    "analysis.llm_client": "analysis.llm.client",
    "analysis.rewrite_experiment": "analysis.rewrite.experiment",
    "analysis.study_fit": "analysis.fit.study_fit",
    "analysis.significance": "analysis.metrics.significance",
    "analysis.regime_names": "analysis.metrics.regime_names",
    "analysis.export": "analysis.report.export",
    "analysis.config": "analysis.pipeline.config",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import analysis.data`` gives ``analysis.datasets.readers`` (the one module, not a copy)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        pass  # the module was run when create_module imported it under its own name


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
