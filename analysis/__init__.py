"""rmtui's analysis backend: data, scoring, features, metrics, rewrites, the study store.

Nothing in this package imports Textual.
"""

__version__ = "0.1.0"
