"""Stage 7, pipeline: ``rmtui run`` and ``rmtui demo``: the TOML config (``config``) and the resumable
steps ingest -> score -> featurize -> fit -> rewrite (``run``), each skipped when its fingerprint is stored.

The top stage: it may import every other stage; nothing in ``analysis`` imports it."""
