"""rmtui: the front end (CLI and Textual app) of the SEAL reward-model analysis."""

from analysis import __version__

__all__ = ["__version__"]
