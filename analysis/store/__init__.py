"""The study store: the only part of rmtui that writes SQL.

``core`` opens the file and migrates it; one module per area reads and writes its tables.

The ground stage: may import ``analysis.metrics`` (the regime names it stores) and the shared top modules
(errors, hashing, textsafe, choices); no other stage.
"""

from analysis.store.core import Study, now, open_study

__all__ = ["Study", "open_study", "now"]
