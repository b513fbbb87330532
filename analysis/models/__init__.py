"""Stage 2, models: the reward models themselves: internals shared by training and scoring, the embedded
demonstration models, their build and training.

Modules: ``quiet`` (loading transformers quietly), ``base`` (loading a base model for training), ``bert``
(a BERT classifier in a frozen bottom and a trained top; its last layer for the first token only),
``deberta_attention`` (the fused DeBERTa-v2 inference attention and the first-token last layer),
``embedded`` (resolving ``embedded:pre|post|base``, the cached model folder, held-out marks),
``embedded_build`` (``python -m analysis.models.embedded_build build``), ``train`` (``rmtui train``:
the Bradley-Terry loop) and ``train_pairs`` (the pairs a training run reads, the held-out split).

May import ``analysis.datasets`` (training reads pair files), ``analysis.features``, ``analysis.llm``,
``analysis.store``, ``analysis.metrics`` and the shared top modules; never scoring, rewrite, fit, report or
pipeline."""
