"""The Query-Content Interaction Module, QCIM (QMVOS Sec. 3.3, Eq. 3-4), and the queries as
dynamic filters (QMVOS Sec. 3.3, last paragraph).

The object queries first attend to each other, then to the *serialised* memory readout M of all
objects (`serialise_readout`), then pass an FFN; each step has a residual and a LayerNorm
(post-norm): QMVOS Eq. 3, `QueryContentInteraction`. The cross-attention of that block is
QMVOS Eq. 4 (`cross_attention`). Every query may attend to the positions of every valid object, which
is how one object's query learns what the others look like. Finally each refined query is a 1x1
filter on its own object's decoder feature (`dynamic_filter_logits`).

Attribute names match the released `decoder.QCIM` (note its numbering: norm2 after the
self-attention, norm1 after the cross-attention, norm3 after the FFN).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .attention import attend, feed_forward, padding_mask, residual_norm


def self_attention(attention: nn.MultiheadAttention, queries: torch.Tensor, object_valid: torch.Tensor | None = None,
                   need_weights: bool = False):
    """SA(X) = Softmax(Q K^T / sqrt(d)) V among the object queries (QMVOS Eq. 2, reused in Eq. 3).

    As released: multi-head (8 heads of 32 channels, each scaled by 1/sqrt(32)) with an output
    projection; padded objects are masked out of the keys. queries: B x N x C; object_valid: B x N.
    Returns B x N x C and the weights B x heads x N x N (or None)."""
    return attend(attention, queries, queries, padding_mask(object_valid), need_weights)


def cross_attention(attention: nn.MultiheadAttention, queries: torch.Tensor, memory: torch.Tensor,
                    content_valid: torch.Tensor | None = None, need_weights: bool = False,
                    identity: tuple[torch.Tensor, torch.Tensor] | None = None):
    """The QCIM's cross-attention between the queries X' and the serialised readout M (QMVOS Eq. 4),
    as printed:

        CA(X', M) = Softmax(Q_X K_M^T) V_M

    with Q_X the query matrix of X' and K_M, V_M the key and value matrices of M: one head, and no
    1/sqrt(d) (unlike the SA of QMVOS Eq. 2).

    The released code (and this kit, so that its weights load) uses torch's multi-head attention:
    8 heads of 32 channels, each *scaled* by 1/sqrt(32), followed by an output projection
    (`out_proj`), with dropout 0.1 on the attention weights while training; positions of padded
    objects are masked out (`content_valid`).

    queries: B x N x C; memory: B x S x C (S = N*H*W for the readout); content_valid: B x S.
    identity (BEYOND THE PAPER, `ModelConfig.qcim_identity`): codes added to the queries (1 x N x C)
    and to the keys (1 x S x C) only, the values staying M, as DETR adds positional encodings.
    Returns B x N x C and the weights B x heads x N x S (or None).
    """
    if identity is None:
        return attend(attention, queries, memory, padding_mask(content_valid), need_weights)
    query_code, key_code = identity
    return attend(attention, queries + query_code, memory + key_code, padding_mask(content_valid), need_weights,
                  values=memory)


class QueryContentInteraction(nn.Module):
    """The QCIM block (QMVOS Sec. 3.3, Eq. 3), as printed:

        X'     = LN(SA(X_sim) + X_sim)
        X''    = LN(CA(X', M) + X')                (CA: QMVOS Eq. 4, `cross_attention`)
        X_qcim = LN(FFN(X'') + X'')

    Here: SA is `self_attn` then `norm2`, CA is `cross_attn` then `norm1`, the FFN (256 -> 1024 ->
    256, ReLU) is `linear1`, `linear2` then `norm3`. As released, dropout 0.1 acts on each
    residual branch while training, and the queries have 256 channels (the paper writes Cv)."""

    def __init__(self, dim: int = 256, ffn_dim: int = 1024, heads: int = 8, dropout: float = 0.1):
        super().__init__()
        self.dropout = dropout
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, queries: torch.Tensor, content: torch.Tensor, object_valid: torch.Tensor | None = None,
                content_valid: torch.Tensor | None = None, need_weights: bool = False, *,
                identity: tuple[torch.Tensor, torch.Tensor] | None = None):
        """queries: B x N x C; content: B x S x C (the serialised readout M, S = N*H*W);
        object_valid: B x N and content_valid: B x S (False = padding); identity: the codes of
        `ObjectIdentity` (beyond the paper; None as released).

        Returns the queries and a dict of weights ("self": B x heads x N x N,
        "cross": B x heads x N x S) when `need_weights`, else None.
        """
        # X' = LN(SA(X_sim) + X_sim): the queries attend to each other
        attended, self_weights = self_attention(self.self_attn, queries, object_valid, need_weights)
        queries = residual_norm(queries, attended, self.norm2, self.dropout, self.training)
        # X'' = LN(CA(X', M) + X') (QMVOS Eq. 4): each query attends to the serialised readout of every object
        attended, cross_weights = cross_attention(self.cross_attn, queries, content, content_valid, need_weights,
                                                  identity)
        queries = residual_norm(queries, attended, self.norm1, self.dropout, self.training)
        # X_qcim = LN(FFN(X'') + X'')
        ffn = feed_forward(queries, self.linear1, self.linear2, self.dropout, self.training)
        queries = residual_norm(queries, ffn, self.norm3, self.dropout, self.training)
        weights = {"self": self_weights, "cross": cross_weights} if need_weights else None
        return queries, weights


class ObjectIdentity(nn.Module):
    """BEYOND THE PAPER (`ModelConfig.qcim_identity`, issue 26's remedy): one learnt code per object
    slot, added to that object's query and to every position of that object's serialised readout in
    the QCIM's cross-attention (queries and keys only). As released, nothing in M says which object a
    position belongs to, so a query can prefer its own object's readout only through its content;
    with these codes the attention logit gains a term e_n W_q^T W_k e_m that can favour m = n.
    Training clips hold at most `TrainConfig.max_objects` objects (3), fewer than a video may: so in
    training every clip draws its objects' codes at random from the table (a random permutation), and
    every code learns to mean "this one object"; at inference object n has code n (n mod slots
    beyond the table)."""

    def __init__(self, dim: int = 256, slots: int = 16):
        super().__init__()
        self.codes = nn.Parameter(torch.randn(slots, dim))  # unit-variance entries: as large as a LayerNormed query

    def forward(self, objects: int, area: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The query codes 1 x N x C and the key codes 1 x (N*area) x C (object-major, as M)."""
        slots = self.codes.shape[0]
        if self.training and objects <= slots:  # a random set of codes per call, so that all of them train
            index = torch.randperm(slots, device=self.codes.device)[:objects]
        else:
            index = torch.arange(objects, device=self.codes.device) % slots
        codes = self.codes[index]  # N x C
        return codes[None], codes.repeat_interleave(area, dim=0)[None]  # 1 x N x C, 1 x NHW x C


def serialise_readout(g16: torch.Tensor) -> torch.Tensor:
    """M of QMVOS Eq. 3-4: B x N x C x H x W -> B x (N*H*W) x C, object-major (all of object 1's
    positions first).

    The paper calls M (N*H*W x Cv) "the serialized memory readout". The released code (and this
    kit) serialises not the raw readout (512 channels, XMem Eq. 1) but `g16_proj(g16)`: g16 is the
    decoder's fusion of the readout, the sensory memory and F16 (512 channels, stride 16), and
    `g16_proj` is a 1x1 conv (shared by the objects) to the 256 query channels (see `QueryDecoder.forward`)."""
    return g16.permute(0, 1, 3, 4, 2).flatten(1, 3)  # B x N x H x W x C -> B x NHW x C


def dynamic_filter_logits(queries: torch.Tensor, g4: torch.Tensor) -> torch.Tensor:
    """The queries as dynamic filters (QMVOS Sec. 3.3, last paragraph): each object's mask logit is
    the dot product of its refined query with the decoder's output feature,

        logit_n(x, y) = <q_n, g4_n(x, y)>

    The paper says only "dot-producting them with the feature output from the decoder". As
    released (and here): the feature is the decoder's stride-4 map of that object (g4, 256
    channels, no ReLU before the product), with no bias and no scale; it replaces XMem's 3x3
    prediction conv, and the logits are then upsampled x4 (bilinear) and fed to the sensory update.

    queries: B x N x C; g4: B x N x C x H4 x W4. Returns B x N x H4 x W4.
    """
    return torch.einsum("bnc,bnchw->bnhw", queries, g4)  # B x N x H4 x W4
