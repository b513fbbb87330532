"""Stage 6, report: what leaves the study for people: the Markdown/HTML report with its figures
(``document``) and the exports of pairs (``export``: JSONL, CSV, Markdown, Parquet).

Reads numbers computed by ``analysis.fit`` and ``analysis.metrics``; computes none of its own. May import
every stage below it; never ``analysis.pipeline``."""
