"""BERT sequence classifiers computed in two parts, and their last layer for the first token only.

Training (analysis/models/train.py) runs the frozen bottom once per distinct text (:func:`bert_bottom`) and
the trained top on its cached output (:func:`bert_top`); scoring (analysis/scoring/) uses
:func:`bert_logits` for a plain BERT classifier (:func:`supports_first_token_forward`): the pooler
reads only the first token, so the last layer computes that row alone.
"""

from __future__ import annotations


def bert_bottom(model, n_layers: int, ids, types, mask):
    """Embeddings and the first ``n_layers`` encoder layers of a BERT sequence classifier."""
    from transformers.masking_utils import create_bidirectional_mask

    base = model.base_model
    h = base.embeddings(input_ids=ids, token_type_ids=types)
    m = create_bidirectional_mask(config=base.config, inputs_embeds=h, attention_mask=mask)
    for layer in base.encoder.layer[:n_layers]:
        h = layer(h, m)
    return h


def bert_top(model, n_below: int, h, mask):
    """The layers above ``n_below``, the pooler and the head on ``h`` -> logits [batch, num_labels].

    The last layer computes only the first token (all the pooler reads): keys and values for every
    token, the query and the feed-forward for one. That is the same number as the full layer at a
    sixth of its cost."""
    from transformers.masking_utils import create_bidirectional_mask

    base = model.base_model
    layers = base.encoder.layer[n_below:]
    if len(layers) > 1:
        m = create_bidirectional_mask(config=base.config, inputs_embeds=h, attention_mask=mask)
        for layer in layers[:-1]:
            h = layer(h, m)
    cls = _bert_layer_first_token(layers[-1], h, mask) if len(layers) else h[:, 0]
    pooled = base.pooler.activation(base.pooler.dense(cls)) if getattr(base, "pooler", None) is not None else cls
    return model.classifier(model.dropout(pooled))


def bert_logits(model, ids, types, mask):
    """The model's logits with its last layer computed for the first token only (see :func:`bert_top`)."""
    below = model.config.num_hidden_layers - 1
    return bert_top(model, below, bert_bottom(model, below, ids, types, mask), mask)


def supports_first_token_forward(model) -> bool:
    """A plain BERT sequence classifier (pooler on [CLS], linear head): :func:`bert_top` applies."""
    import torch.nn as nn

    if type(model).__name__ != "BertForSequenceClassification" or getattr(model.config, "is_decoder", False):
        return False
    base = model.base_model
    return (getattr(base, "pooler", None) is not None and isinstance(getattr(model, "classifier", None), nn.Linear)
            and len(getattr(base.encoder, "layer", [])) >= 1)


def _bert_layer_first_token(layer, h, mask):
    """A BertLayer's output at position 0 only (eval: equal to ``layer(h)[:, 0]``)."""
    import torch
    import torch.nn.functional as F

    att = layer.attention.self
    b, n, _ = h.shape
    heads, size = att.num_attention_heads, att.attention_head_size
    q = att.query(h[:, :1]).view(b, 1, heads, size).transpose(1, 2)
    k = att.key(h).view(b, n, heads, size).transpose(1, 2)
    v = att.value(h).view(b, n, heads, size).transpose(1, 2)
    bias = torch.zeros((b, 1, 1, n), dtype=h.dtype, device=h.device)
    bias = bias.masked_fill(mask[:, None, None, :] == 0, torch.finfo(h.dtype).min)
    ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                         dropout_p=att.dropout.p if layer.training else 0.0)
    ctx = ctx.transpose(1, 2).reshape(b, heads * size)
    a = layer.attention.output(ctx, h[:, 0])
    return layer.output(layer.intermediate(a), a)
