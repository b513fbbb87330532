"""Stage 1, datasets: reading preference data as published and putting it into a study.

Owns the readers (``readers``: hh-rlhf JSONL, generic JSONL/CSV/Parquet, ``hf:NAME``), the published
shapes (``shapes``: A/B with a label, votes, scores, ranked lists, attributes), the presets, ``--inspect``
(``peek``), ``ingest`` and the human-label summary (``human``); ``synth`` writes a synthetic study for
tests and benchmarks.

May import: ``analysis.features`` (attributes are stored as features), ``analysis.llm``, ``analysis.store``,
``analysis.metrics`` and the shared top modules. Never the model, scoring, rewrite, fit, report or pipeline
stages (import-linter contract ``stages``)."""
