"""Stage 6, report: what leaves the study for people: the Markdown/HTML report with its figures
(``document``) and the exports of pairs (``export``: JSONL, CSV, Markdown, Parquet).

Reads numbers computed by ``analysis.fit`` and ``analysis.metrics``; computes none of its own. May import
every stage below it; never ``analysis.pipeline``."""


def __getattr__(name: str):
    """``analysis.report`` was one module before the layout by stage: the report's names (``write_report``, ...) still import from it."""
    if name.startswith("__"):
        raise AttributeError(name)
    import analysis.report.document as module

    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module 'analysis.report' has no attribute {name!r}") from None
