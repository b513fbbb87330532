"""Scoring settings and the result of a study run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from analysis.errors import ModelError

FORMATS = ("pair", "raw", "chat")
ROLES = ("pre", "post", "other")
DTYPES = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cpu", "cuda")

Progress = Callable[[int, int], None]  # progress(n_done, n_total)
CUDA_TOKEN_BUDGET = 16384
CPU_TOKEN_BUDGET = 4096


# ---------------------------------------------------------------------------------------------
# settings and results


@dataclass
class ScoreSettings:
    device: str = "auto"        # auto | cpu | cuda
    dtype: str = "auto"         # auto (bf16 on cuda, fp32 on cpu) | bf16 | fp16 | fp32
    format: str | None = None   # pair | raw | chat ; None: chosen by rule
    max_length: int | None = None  # None: the model's max length
    token_budget: int | None = None  # padded tokens per batch; None: 16384 on CUDA, 4096 on CPU
    trust_remote_code: bool = False
    compile: bool = False       # torch.compile the model (pays on long GPU runs)
    chunk_size: int = 1024      # texts per length-sorted window and per committed chunk
    overlap: bool | None = None  # tokenize the next chunk in a thread; None: on CUDA only
    tokenize_threads: int | None = None  # threads that tokenize a chunk; None: min(8, cores)
    defer_sync: bool | None = None  # keep rewards on the device until a chunk ends; None: on CUDA
    first_token_top: bool = True  # BERT and DeBERTa-v2 classifiers: the last layer computes only the
                                  # first token, all the pooler reads (same rewards; a 3-layer BERT
                                  # runs ~1/4 faster)
    fused_attention: bool = True  # DeBERTa-v2/v3: position bias + SDPA in place of transformers'
                                  # eager disentangled attention (same rewards; analysis/models/deberta_attention.py)
    pad_multiple: int | None = None  # pad each batch's length to a multiple of N; None: 8 on CUDA
                                     # (tensor-core and attention-bias alignment), 1 on CPU
    max_batch_size: int | None = None
    allow_untrained_head: bool = False  # accept a newly initialised classification head (benchmarks)
    oom_hook: Callable[[int], None] | None = field(default=None, repr=False, compare=False)
    simulate_oom_above: int | None = None  # test hook: padded batches above N tokens raise CUDA OOM

    def validate(self) -> None:
        if self.device not in DEVICES:
            raise ModelError(f"--device {self.device!r}: expected one of {', '.join(DEVICES)}", "Bad option")
        if self.dtype not in DTYPES:
            raise ModelError(f"--dtype {self.dtype!r}: expected one of {', '.join(DTYPES)}", "Bad option")
        if self.format is not None and self.format not in FORMATS:
            raise ModelError(f"--format {self.format!r}: expected one of {', '.join(FORMATS)}", "Bad option")
        if self.token_budget is not None and self.token_budget < 1:
            raise ModelError(f"--token-budget {self.token_budget}: must be at least 1", "Bad option")
        if self.max_length is not None and self.max_length < 4:
            raise ModelError(f"--max-length {self.max_length}: must be at least 4", "Bad option")
        if self.chunk_size < 1:
            raise ModelError(f"chunk_size {self.chunk_size}: must be at least 1", "Bad option")
        if self.pad_multiple is not None and self.pad_multiple < 1:
            raise ModelError(f"pad_multiple {self.pad_multiple}: must be at least 1", "Bad option")

    def record(self) -> dict[str, Any]:
        """JSON-able settings (hooks left out)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "oom_hook"}
        return d


@dataclass
class ScoreRunResult:
    model_id: str
    name: str
    role: str
    run_id: str
    n_texts: int = 0          # texts of the study's pairs
    n_scored: int = 0         # scored in this run
    n_skipped: int = 0        # already scored by this model run (cache)
    n_truncated: int = 0      # of the texts scored in this run
    seconds: float = 0.0
    texts_per_s: float = 0.0
    device: str = ""
    dtype: str = ""
    format: str = ""
    max_length: int = 0
    token_budget: int = 0     # the budget at the end (lower than asked after OOM back-off)
    n_oom: int = 0
    demoted: list[str] = field(default_factory=list)  # model ids whose role moved to 'other'
    invariance_max_abs_diff: float | None = None
    n_precomputed: int = 0    # rewards taken from the study's precomputed results (after a verified sample)
    precomputed: str = ""     # one line: what was taken from them and how it was checked, or why not
