"""Reward-model scoring: load any sequence-classification RM, score texts fast and reproducibly.

What the paper's code did: one text per forward pass in fp32, GPU cache emptied after every pair.
What this module does instead:

- texts are tokenized per *chunk* (``ScoreSettings.chunk_size`` texts), sorted by length inside the
  chunk and packed into batches whose padded size stays under a token budget
  (:func:`iter_batches`, :class:`BatchRunner`); bf16 on CUDA, fp32 on CPU, ``torch.inference_mode``;
- on a CUDA out-of-memory error the budget is halved and the *same* batch is retried (never lost);
- truncation is explicit: the context is cut from the LEFT so the response survives; every text
  carries a ``truncated`` flag;
- a chunk is one transaction in the study, so a killed job loses at most one chunk and a rerun skips
  every text already scored by the same model run (``model_id``).

Input formats (``ScoreSettings.format``):

``pair``  ``tokenizer(context, response)``, the first sequence truncated from the left (as the SEAL
          paper scored hh-rlhf, which did not truncate at all).
``raw``   the whole transcript as one sequence, truncated from the left.
``chat``  ``tokenizer.apply_chat_template(transcript_to_messages(context, response))``, truncated
          from the left (a leading BOS token is kept).

Default by rule: ``chat`` when the tokenizer has a chat template and the model is a decoder, else
``pair``.

Modules: ``settings`` (ScoreSettings, ScoreRunResult), ``batching`` (token budget, OOM back-off),
``models`` (RewardModel: tokenization and forward), ``loading`` (load_reward_model, model ids),
``study`` (the study loop: the only writer of the study), ``backends`` (the engine interface and
the in-process engine), ``ray_backend`` (Ray Data actors; needs the ``ray`` extra), ``served``
(a vLLM server's ``/classify``), ``bench`` (benchmarks).

Stage 3, scoring. May import ``analysis.models``, ``analysis.datasets``, ``analysis.features``, ``analysis.llm``,
``analysis.store``, ``analysis.metrics`` and the shared top modules; never rewrite, fit, report or pipeline.
"""

from __future__ import annotations

from analysis.scoring.batching import BatchRunner, is_oom, iter_batches
from analysis.scoring.bench import (RANDOM_SHAPES, SAMPLE_DIR, BenchResult, EngineBenchResult, bench, bench_engine, naive_scores,
                    random_model_folder, sample_texts)
from analysis.scoring.loading import folder_fingerprint, load_reward_model, make_model_id
from analysis.scoring.models import Encoded, RewardModel
from analysis.scoring.settings import (CPU_TOKEN_BUDGET, CUDA_TOKEN_BUDGET, DEVICES, DTYPES, FORMATS, ROLES, Progress,
                       ScoreRunResult, ScoreSettings)
from analysis.scoring.study import check_invariance, load_study_models, rescore, score_study, study_models

__all__ = [
    "BatchRunner", "is_oom", "iter_batches",
    "RANDOM_SHAPES", "SAMPLE_DIR", "BenchResult", "EngineBenchResult", "bench", "bench_engine", "naive_scores", "random_model_folder", "sample_texts",
    "folder_fingerprint", "load_reward_model", "make_model_id",
    "Encoded", "RewardModel",
    "CPU_TOKEN_BUDGET", "CUDA_TOKEN_BUDGET", "DEVICES", "DTYPES", "FORMATS", "ROLES", "Progress",
    "ScoreRunResult", "ScoreSettings",
    "check_invariance", "load_study_models", "rescore", "score_study", "study_models",
]
