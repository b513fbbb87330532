"""A fused inference path for DeBERTa-v2/v3 attention (the paper's RMs are deberta-v3-large).

transformers' ``DisentangledSelfAttention`` materialises, per layer, the content scores, the two
relative-position score tensors (after ``repeat``-ing the position projections once per batch item),
their sum, a masked copy, the softmax and the probabilities, each batch x heads x length x length. A
profile on an H100 (benchmarks/results/h100-2026-11-27/profile.txt) puts matrix products at 29 % of GPU
time; the rest is that element-wise traffic.

Here the two position terms are computed without the ``repeat`` (one product per head against the
shared position projections), gathered, summed once with the key mask into one additive bias, and
``scaled_dot_product_attention`` does scores, scale, bias, softmax and the product with V in one
kernel. Inference only: training, ``output_attentions`` and separate query states keep the original.

Same function: padded *query* rows attend to the valid keys instead of to nothing (transformers masks
them entirely); their outputs are never read by valid positions (their keys are masked) nor by the
pooler (first token), so rewards are unchanged. Tested against the original forward in fp32.
"""

from __future__ import annotations

import math
import types


def patch_deberta_v2_attention(model) -> int:
    """Give every DeBERTa-v2 attention module of ``model`` the fused inference forward.

    Returns the number of modules patched (0 for other architectures). Idempotent."""
    try:
        from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention
    except Exception:  # pragma: no cover - transformers without DeBERTa-v2
        return 0
    n = 0
    for mod in model.modules():
        if isinstance(mod, DisentangledSelfAttention) and not hasattr(mod, "_rmtui_original_forward"):
            mod._rmtui_original_forward = mod.forward
            mod.forward = types.MethodType(_fused_forward, mod)
            n += 1
    return n


class unpatched:
    """``with unpatched(model):`` runs (and deep-copies) ``model`` with transformers' own attention."""

    def __init__(self, model):
        self.model = model
        self.mods: list = []

    def __enter__(self):
        for mod in self.model.modules():
            if hasattr(mod, "_rmtui_original_forward"):
                del mod.forward, mod._rmtui_original_forward
                self.mods.append(mod)
        return self.model

    def __exit__(self, *exc):
        for mod in self.mods:
            mod._rmtui_original_forward = mod.forward
            mod.forward = types.MethodType(_fused_forward, mod)
        return False


def _fused_forward(self, hidden_states, attention_mask, output_attentions=False, query_states=None,
                   relative_pos=None, rel_embeddings=None):
    import torch
    import torch.nn.functional as F

    if (output_attentions or query_states is not None or self.training or attention_mask is None
            or attention_mask.dim() != 4 or (relative_pos is not None and relative_pos.dim() == 4
                                              and relative_pos.size(0) != 1)):
        return self._rmtui_original_forward(hidden_states, attention_mask, output_attentions, query_states,
                                            relative_pos, rel_embeddings)
    b, t, _ = hidden_states.shape
    h = self.num_attention_heads

    def heads(x):  # [b, t, h*d] -> [b, h, t, d]
        return x.view(b, t, h, -1).transpose(1, 2)

    q = heads(self.query_proj(hidden_states))
    k = heads(self.key_proj(hidden_states))
    v = heads(self.value_proj(hidden_states))
    d = q.size(-1)
    scale_factor = 1 + ("c2p" in self.pos_att_type) + ("p2c" in self.pos_att_type)
    inv_scale = 1.0 / math.sqrt(d * scale_factor)

    bias = None
    if self.relative_attention:
        bias = _position_bias(self, q, k, relative_pos, rel_embeddings, inv_scale)
    key_valid = attention_mask.bool().any(dim=-2, keepdim=True)  # [b, 1, 1, t]
    neg = torch.finfo(q.dtype).min
    if bias is None:
        bias = torch.zeros((b, 1, 1, t), dtype=q.dtype, device=q.device)
    bias = bias.masked_fill(~key_valid, neg)
    ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=inv_scale)
    return ctx.transpose(1, 2).reshape(b, t, -1), None


def _position_bias(self, q, k, relative_pos, rel_embeddings, inv_scale):
    """(c2p + p2c) * inv_scale as one [b, h, t, t] tensor, without repeating the position projections."""
    import torch

    from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position

    b, h, t, d = q.shape
    if relative_pos is None:
        relative_pos = build_relative_position(q, k, bucket_size=self.position_buckets,
                                               max_position=self.max_relative_positions)
    rel_pos = relative_pos.reshape(relative_pos.shape[-2:]).to(device=q.device, dtype=torch.long)  # [t, t]
    span = self.pos_ebd_size
    rel = self.pos_dropout(rel_embeddings)[: span * 2]  # [2*span, hidden]
    n_pos = rel.size(0)

    def pos_heads(x):  # [2*span, h*d] -> [h, d, 2*span]
        return x.view(n_pos, h, d).permute(1, 2, 0)

    score = None
    if "c2p" in self.pos_att_type:
        pos_key = pos_heads(self.key_proj(rel) if self.share_att_key else self.pos_key_proj(rel))
        c2p = torch.matmul(q.transpose(0, 1).reshape(h, b * t, d), pos_key).view(h, b, t, n_pos).transpose(0, 1)
        idx = torch.clamp(rel_pos + span, 0, span * 2 - 1).expand(b, h, t, t)
        score = torch.gather(c2p, -1, idx)
    if "p2c" in self.pos_att_type:
        pos_query = pos_heads(self.query_proj(rel) if self.share_att_key else self.pos_query_proj(rel))
        p2c = torch.matmul(k.transpose(0, 1).reshape(h, b * t, d), pos_query).view(h, b, t, n_pos).transpose(0, 1)
        idx = torch.clamp(-rel_pos + span, 0, span * 2 - 1).expand(b, h, t, t)
        p2c = torch.gather(p2c, -1, idx).transpose(-1, -2)
        score = p2c if score is None else score + p2c
    return None if score is None else score * inv_scale
