"""A fused inference path for DeBERTa-v2/v3 attention (the paper's RMs are deberta-v3-large).

transformers' ``DisentangledSelfAttention`` materialises, per layer, the content scores, the two
relative-position score tensors (after ``repeat``-ing the position projections once per batch item),
their sum, a masked copy, the softmax and the probabilities, each batch x heads x length x length. A
profile on an H100 (benchmarks/results/h100-2026-11-27/profile.txt) puts matrix products at 29 % of GPU
time; the rest is that element-wise traffic.

Here the position projections (shared by the batch, a few hundred rows) are scaled and put in
offset order first, so one product per term gives a [b, h, t, 2t] table of scores per offset, read as
[b, h, t, t] through a strided view (the relative-attention skew) instead of a gather; the key mask
rides in the p2c product as one more column, one addition makes the bias, and
``scaled_dot_product_attention`` does
scores, scale, bias, softmax and the product with V in one kernel. On 2 CPU cores, two
deberta-v3-large layers at 40 x 200 tokens take 4.3-4.9 s against 5.7-9.9 s with transformers'
attention and 4.8-6.4 s with the earlier gather version of this file (five runs on a shared machine;
within each run 1.35-2.0x faster than transformers' and 1.13-1.30x faster than the gather version).

Tried and left out: FlexAttention (the tables read inside the kernel, no [b, h, t, t] tensor). Its
CPU template in torch 2.13 returned wrong rows at lengths 24 and 40 (score_mod loads past the last
key), fell back to eager attention when the indices were clamped with ``torch.clamp``, and failed to
compile with clamping by ``minimum``/``maximum`` plus a key mask; on the CPU it was also slower (8.0 s
for the layers above). It cannot be tested here, so it is not shipped.

Inference only: training, ``output_attentions`` and separate query states keep the original.

The last layer can also be computed for the first token only (``patch_deberta_v2_first_token``):
the classifier's pooler reads nothing else, so the other rows' attention, feed-forward and norms of
that layer are skipped (1/24 of deberta-v3-large's work, 1/12 of the base shape's).

Same function: padded *query* rows attend to the valid keys instead of to nothing (transformers masks
them entirely); their outputs are never read by valid positions (their keys are masked) nor by the
pooler (first token), so rewards are unchanged. Tested against the original forward in fp32.
"""

from __future__ import annotations

import math
import types


def _patch(mod, fn) -> int:
    if hasattr(mod, "_rmtui_original_forward"):
        return 0
    mod._rmtui_original_forward = mod.forward
    mod._rmtui_patch = fn
    mod.forward = types.MethodType(fn, mod)
    return 1


def patch_deberta_v2_attention(model) -> int:
    """Give every DeBERTa-v2 attention module of ``model`` the fused inference forward.

    Returns the number of modules patched (0 for other architectures). Idempotent."""
    try:
        from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention
    except Exception:  # pragma: no cover - transformers without DeBERTa-v2
        return 0
    return sum(_patch(mod, _fused_forward) for mod in model.modules()
               if isinstance(mod, DisentangledSelfAttention))


def supports_first_token_layer(model) -> bool:
    """A DeBERTa-v2 sequence classifier whose pooler reads the first token of the last layer only."""
    if type(model).__name__ != "DebertaV2ForSequenceClassification":
        return False
    base = model.base_model
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    return (bool(layers) and getattr(base, "z_steps", 0) <= 1
            and type(getattr(model, "pooler", None)).__name__ == "ContextPooler")


def patch_deberta_v2_first_token(model) -> bool:
    """Compute the last encoder layer of a DeBERTa-v2 classifier for the first token only.

    The encoder's last hidden state then has one position, all the classifier reads (its
    ``ContextPooler`` takes position 0); the logits are unchanged. Returns whether it applied."""
    if not supports_first_token_layer(model):
        return False
    _patch(model.base_model.encoder.layer[-1], _first_token_layer_forward)
    return True


def restore_deberta_v2_attention(model) -> int:
    """Undo :func:`patch_deberta_v2_attention`: transformers' own attention forward again (the
    first-token layer stays as it is). Returns the number of modules restored."""
    n = 0
    for mod in model.modules():
        if getattr(mod, "_rmtui_patch", None) is _fused_forward and hasattr(mod, "_rmtui_original_forward"):
            del mod.forward, mod._rmtui_original_forward, mod._rmtui_patch
            n += 1
    return n


def fused_attention_modules(model) -> int:
    """How many modules of ``model`` run the fused attention forward now."""
    return sum(1 for mod in model.modules()
               if getattr(mod, "_rmtui_patch", None) is _fused_forward and "forward" in vars(mod))


class unpatched:
    """``with unpatched(model):`` runs ``model`` with transformers' own forwards (attention and the
    whole last layer), and puts rmtui's back afterwards; ``only="attention"`` or ``"first_token"``
    undoes one of the two."""

    def __init__(self, model, only: str | None = None):
        self.model = model
        self.only = {"attention": _fused_forward, "first_token": _first_token_layer_forward, None: None}[only]
        self.mods: list = []

    def __enter__(self):
        for mod in self.model.modules():
            if hasattr(mod, "_rmtui_original_forward") and self.only in (None, mod._rmtui_patch):
                del mod.forward, mod._rmtui_original_forward
                self.mods.append(mod)
        return self.model

    def __exit__(self, *exc):
        for mod in self.mods:
            mod._rmtui_original_forward = mod.forward
            mod.forward = types.MethodType(mod._rmtui_patch, mod)
        return False


def _keeps_original(self, attention_mask, output_attentions, query_states, relative_pos) -> bool:
    """Cases the rmtui forwards leave to transformers: training, attention maps, separate query
    states (z_steps), and masks or relative positions of a shape they do not read."""
    return bool(output_attentions or query_states is not None or self.training or attention_mask is None
                or attention_mask.dim() != 4 or (relative_pos is not None and relative_pos.dim() == 4
                                                  and relative_pos.size(0) != 1))


def _inv_scale(self, d: int) -> float:
    """DeBERTa's 1 / sqrt(d * (1 + number of position terms))."""
    return 1.0 / math.sqrt(d * (1 + ("c2p" in self.pos_att_type) + ("p2c" in self.pos_att_type)))


def _key_valid(attention_mask):
    """[b, t]: which keys of a 4-d ``attention_mask`` are real tokens.

    DeBERTa-v2's 4-d mask is the outer product of the token mask with itself (``get_attention_mask``),
    so its diagonal is the token mask: read in O(b t), where ``any`` over a query axis took 7 % of
    tiny-deberta's CPU time. Like the rest of this path, it takes the mask to be a key-padding mask."""
    return attention_mask[:, 0].diagonal(dim1=-2, dim2=-1).bool()


def _masked_score(dtype) -> float:
    """The score of a padded key: large and negative, and finite once a position score is added."""
    import torch

    return torch.finfo(dtype).min / 2


def _mask_keys(bias, key_valid):
    """Padded keys (``key_valid`` [b, t] False) get ``_masked_score`` in ``bias``, in place."""
    return bias.masked_fill_(~key_valid[:, None, None, :], _masked_score(bias.dtype))


def _relative_pos(self, q, k, relative_pos):
    """The [t, t] relative-position ids (transformers' ``build_relative_position`` when not given)."""
    import torch

    from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position

    if relative_pos is None:
        relative_pos = build_relative_position(q, k, bucket_size=self.position_buckets,
                                               max_position=self.max_relative_positions)
    return relative_pos.reshape(relative_pos.shape[-2:]).to(device=q.device, dtype=torch.long)


def _position_rows(self, rel_embeddings, inv_scale: float, h: int, d: int):
    """The position keys (c2p) and position queries (p2c) as [2*span, h, d], scaled (None for a term
    the model lacks), and span."""
    span = self.pos_ebd_size
    rel = self.pos_dropout(rel_embeddings)[: span * 2]  # [2*span, hidden]

    def rows(shared, own):
        return (shared(rel) if self.share_att_key else own(rel)).view(rel.size(0), h, d) * inv_scale

    pos_key = rows(self.key_proj, lambda x: self.pos_key_proj(x)) if "c2p" in self.pos_att_type else None
    pos_query = rows(self.query_proj, lambda x: self.pos_query_proj(x)) if "p2c" in self.pos_att_type else None
    return pos_key, pos_query, span


def _first_token_layer_forward(self, hidden_states, attention_mask, query_states=None, relative_pos=None,
                               rel_embeddings=None, output_attentions=False):
    """A DebertaV2Layer's output at position 0 only, as [b, 1, hidden]."""
    if _keeps_original(self.attention.self, attention_mask, output_attentions, query_states, relative_pos):
        return self._rmtui_original_forward(hidden_states, attention_mask, query_states, relative_pos,
                                            rel_embeddings, output_attentions)
    ctx = _first_token_attention(self.attention.self, hidden_states, attention_mask, relative_pos, rel_embeddings)
    a = self.attention.output(ctx, hidden_states[:, :1])
    return self.output(self.intermediate(a), a), None


def _first_token_attention(self, hidden_states, attention_mask, relative_pos, rel_embeddings):
    """Disentangled attention of query 0 against every key: [b, 1, h*d]."""
    import torch
    import torch.nn.functional as F

    b, t, _ = hidden_states.shape
    h = self.num_attention_heads
    q = self.query_proj(hidden_states[:, :1]).view(b, 1, h, -1).transpose(1, 2)  # [b, h, 1, d]
    k = self.key_proj(hidden_states).view(b, t, h, -1).transpose(1, 2)
    v = self.value_proj(hidden_states).view(b, t, h, -1).transpose(1, 2)
    d = q.size(-1)
    inv_scale = _inv_scale(self, d)
    bias = torch.zeros((b, h, 1, t), dtype=q.dtype, device=q.device)
    if self.relative_attention:
        rp = _relative_pos(self, k, k, relative_pos)
        pos_key, pos_query, span = _position_rows(self, rel_embeddings, inv_scale, h, d)

        def per_key(rows, idx):  # [2*span, h, d] -> [t, h, d]: key j's position row
            return rows[torch.clamp(idx, 0, rows.size(0) - 1)]

        if pos_key is not None:  # c2p: query 0 against the position of key j, rel(0, j)
            bias = bias + torch.einsum("bhd,jhd->bhj", q[:, :, 0], per_key(pos_key, rp[0] + span)).unsqueeze(2)
        if pos_query is not None:  # p2c: key j against the position of query 0, -rel(j, 0)
            bias = bias + torch.einsum("bhjd,jhd->bhj", k, per_key(pos_query, -rp[:, 0] + span)).unsqueeze(2)
    ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=_mask_keys(bias, _key_valid(attention_mask)),
                                         scale=inv_scale)
    return ctx.transpose(1, 2).reshape(b, 1, -1)


def _fused_forward(self, hidden_states, attention_mask, output_attentions=False, query_states=None,
                   relative_pos=None, rel_embeddings=None):
    import torch
    import torch.nn.functional as F

    if _keeps_original(self, attention_mask, output_attentions, query_states, relative_pos):
        return self._rmtui_original_forward(hidden_states, attention_mask, output_attentions, query_states,
                                            relative_pos, rel_embeddings)
    b, t, _ = hidden_states.shape
    h = self.num_attention_heads

    def heads(x):  # [b, t, h*d] -> [b, h, t, d]
        return x.view(b, t, h, -1).transpose(1, 2)

    q = heads(self.query_proj(hidden_states))
    k = heads(self.key_proj(hidden_states))
    v = heads(self.value_proj(hidden_states))
    inv_scale = _inv_scale(self, q.size(-1))
    key_valid = _key_valid(attention_mask)
    bias, masked = (_position_bias(self, q, k, relative_pos, rel_embeddings, inv_scale, key_valid)
                    if self.relative_attention else (None, False))
    if bias is None:
        bias = torch.zeros((b, 1, 1, t), dtype=q.dtype, device=q.device)
    if not masked:
        bias = _mask_keys(bias, key_valid)
    ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=inv_scale)
    return ctx.transpose(1, 2).reshape(b, t, -1), None


def _toeplitz_index(rp, t: int):
    """The relative-position index of every offset: ``out[j - i + t - 1] == rp[i, j]``.

    DeBERTa's relative position of query i and key j (bucketed or not) is a function of i - j only,
    so its [t, t] table is read from its first row and first column."""
    import torch

    # offsets -(t-1) .. t-1, and the last once more: an even table width keeps the rows aligned
    return torch.cat([rp[:, 0].flip(0), rp[0, 1:], rp[0, -1:]])


def _skewed(lin, t: int, *, transpose: bool):
    """View a contiguous [h, b*t, 2t] table of per-offset scores as [b, h, t, t] without copying.

    Row i of the table holds offsets j - i + t - 1 (or i - j + t - 1 when ``transpose``: then row j
    holds the scores of key j against every query i), so element (i, j) lies at a fixed stride: the
    classic relative-attention skew, in place of a [b, h, t, t] gather."""
    h, bt, w = lin.shape
    b = bt // t
    row, col = (1, w - 1) if transpose else (w - 1, 1)
    return lin.as_strided((b, h, t, t), (t * w, b * t * w, row, col), t - 1)  # lin: a fresh bmm output


def _position_bias(self, q, k, relative_pos, rel_embeddings, inv_scale, key_valid):
    """(c2p + p2c) * inv_scale as one new [b, h, t, t] tensor, with no gather and no repeat, and
    whether the key mask is already in it.

    The position rows (2*span of them, shared by the batch) are put in offset order first, so one
    product per term gives every score of every offset, and the two terms are read through strided
    views (``_skewed``) by the single addition that makes the bias. p2c's product has one row per
    key, so the key mask rides in it as one more column of the keys (0 or ``_masked_score``) against
    a row of ones: no masking pass over the [b, h, t, t] bias."""
    import torch

    b, h, t, d = q.shape
    offsets = _toeplitz_index(_relative_pos(self, q, k, relative_pos), t)  # [2t]: offset -> position id
    pos_key, pos_query, span = _position_rows(self, rel_embeddings, inv_scale, h, d)

    def per_offset(rows, idx):  # [2*span, h, d] -> [h, d, 2t], one column per offset
        return rows[torch.clamp(idx, 0, rows.size(0) - 1)].permute(1, 2, 0)

    terms = []
    if pos_key is not None:  # c2p: query i against the position of key j, C[i, rel(i, j) + span]
        lin = torch.bmm(q.transpose(0, 1).reshape(h, b * t, d), per_offset(pos_key, offsets + span))  # [h, b*t, 2t]
        terms.append(_skewed(lin, t, transpose=False))
    if pos_query is not None:  # p2c: key j against the position of query i, P[j, -rel(j, i) + span]
        # key j's row holds the offsets i - j + t - 1, whose relative position is rel(j, i)
        e = d + 8  # d, the mask column, zeros: a width of whole 16-byte rows
        keys = k.new_empty((h, b * t, e))
        keys.view(h, b, t, e)[..., :d].copy_(k.transpose(0, 1))
        keys[..., d] = torch.where(key_valid, 0.0, _masked_score(k.dtype)).reshape(1, b * t)
        keys[..., d + 1:] = 0.0
        rows = k.new_zeros((h, e, 2 * t))
        rows[:, :d] = per_offset(pos_query, -offsets + span)
        rows[:, d] = 1.0
        terms.append(_skewed(torch.bmm(keys, rows), t, transpose=True))
    if not terms:
        return None, False
    bias = torch.empty((b, h, t, t), dtype=q.dtype, device=q.device)
    if len(terms) == 2:
        return torch.add(terms[0], terms[1], out=bias), True
    return bias.copy_(terms[0]), pos_query is not None
