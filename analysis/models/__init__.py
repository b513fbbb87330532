"""Model internals shared by training (analysis/models/train.py, the embedded models' build) and scoring
(analysis/scoring/).

Modules: ``base`` (loading a base model for training), ``bert`` (a BERT classifier in a frozen bottom
and a trained top; its last layer for the first token only), ``deberta_attention`` (the fused
DeBERTa-v2 inference attention and the first-token last layer).
"""
