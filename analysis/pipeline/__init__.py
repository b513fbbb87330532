"""Stage 7, pipeline: ``rmtui run`` and ``rmtui demo``: the TOML config (``config``) and the resumable
steps ingest -> score -> featurize -> fit -> rewrite (``run``), each skipped when its fingerprint is stored.

The top stage: it may import every other stage; nothing in ``analysis`` imports it."""


def __getattr__(name: str):
    """``analysis.pipeline`` was one module before the layout by stage: the pipeline's names (``run_config``, ``Reporter``, ...) still import from it."""
    if name.startswith("__"):
        raise AttributeError(name)
    import analysis.pipeline.run as module

    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module 'analysis.pipeline' has no attribute {name!r}") from None
