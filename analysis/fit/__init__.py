"""Stage 5, fit: read a study, run the pure statistics of ``analysis.metrics`` and write the fit.

Owns ``study_fit`` (``fit_study``, ``summary``, ``FitOptions``). May import every stage below it
(rewrite, scoring, models, datasets, features, llm, store, metrics); never ``analysis.report`` or
``analysis.pipeline``."""
