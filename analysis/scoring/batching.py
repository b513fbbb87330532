"""Token-budget batching with CUDA out-of-memory back-off (reused by the hf: featurizer)."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

from analysis.errors import ModelError

def iter_batches(lengths: Sequence[int], token_budget: int, *, max_batch_size: int | None = None
                 ) -> Iterator[list[int]]:
    """Indices of ``lengths`` in batches, longest first, each batch's padded size under the budget.

    Padded size = ``len(batch) * max(lengths in batch)``. A text longer than the whole budget gets
    a batch of its own. Longest first, so an out-of-memory error shows up at the start.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    pos = 0
    while pos < len(order):
        n = _take(lengths, order, pos, token_budget, max_batch_size)
        yield [int(i) for i in order[pos:pos + n]]
        pos += n


def _take(lengths: np.ndarray, order: np.ndarray, pos: int, budget: int, max_batch: int | None) -> int:
    longest = max(int(lengths[order[pos]]), 1)
    n = max(1, budget // longest)
    if max_batch:
        n = min(n, max_batch)
    return min(n, len(order) - pos)


def is_oom(exc: BaseException) -> bool:
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except Exception:  # pragma: no cover
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class BatchRunner:
    """Run ``fn(indices)`` over length-sorted batches under a token budget, halving it on OOM.

    The budget persists across calls of :meth:`run` (a model that ran out of memory once keeps the
    smaller budget). A batch that hits OOM is split under the new budget and retried; only a single
    text that does not fit alone raises :class:`ModelError`.

    ``oom_hook(padded_tokens)`` is called before every batch and may raise
    ``torch.cuda.OutOfMemoryError`` (tests); ``simulate_oom_above`` does that for batches above N
    padded tokens.
    """

    def __init__(self, token_budget: int, *, max_batch_size: int | None = None,
                 oom_hook: Callable[[int], None] | None = None, simulate_oom_above: int | None = None,
                 on_oom: Callable[[int, int], None] | None = None) -> None:
        self.budget = int(token_budget)
        self.max_batch_size = max_batch_size
        self.oom_hook = oom_hook
        self.simulate_oom_above = simulate_oom_above
        self.on_oom = on_oom
        self.n_oom = 0

    def _check_hooks(self, padded: int) -> None:
        if self.oom_hook is not None:
            self.oom_hook(padded)
        if self.simulate_oom_above is not None and padded > self.simulate_oom_above:
            import torch

            raise torch.cuda.OutOfMemoryError(
                f"simulated CUDA out of memory: batch of {padded} padded tokens > {self.simulate_oom_above}")

    def run(self, lengths: Sequence[int], fn: Callable[[list[int]], Any]) -> Iterator[tuple[list[int], Any]]:
        lengths = np.asarray(lengths, dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        pos = 0
        while pos < len(order):
            n = _take(lengths, order, pos, self.budget, self.max_batch_size)
            batch = [int(i) for i in order[pos:pos + n]]
            padded = n * max(int(lengths[batch[0]]), 1)
            try:
                self._check_hooks(padded)
                out = fn(batch)
            except Exception as e:
                if not is_oom(e):
                    raise
                _free_cuda()
                self.n_oom += 1
                if n == 1:
                    raise ModelError(
                        f"out of memory on a single text of {int(lengths[batch[0]])} tokens (token budget "
                        f"{self.budget}); lower --max-length or use a GPU with more memory", "Out of memory",
                    ) from e
                self.budget = max(1, min(self.budget, padded) // 2)
                if self.on_oom:
                    self.on_oom(self.budget, padded)
                continue  # same position: the batch is rebuilt under the new budget
            yield batch, out
            pos += n


def _free_cuda() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover
        pass
