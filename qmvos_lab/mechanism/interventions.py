"""Causal interventions on a trained QMVOS at inference, without retraining: each is a context
manager that patches the network's QMVOS modules while it is open and restores them exactly on
exit (no state-dict key changes; weights a knock-out touches are swapped back as the same tensor,
so the intact network's outputs stay bit-identical). Use them around any inference:

    with permuted_queries(network):
        predictions, _ = segment_videos(network, videos)

permuted_queries      object i's query is used for object i + shift (mod N) in the decoder (the
                      QCIM and the dynamic filters, QMVOS Sec. 3.3); the SIM still pools its own;
mean_queries          every query replaced by the mean of the frame's queries before the QCIM;
without_qcim          no QCIM (QMVOS Eq. 3: SA, CA of Eq. 4, FFN): the dynamic filters are the SIM's
                      queries;
without_sim_interaction
                      the SIM's self-attention (QMVOS Eq. 2) lets each query attend to itself only: no
                      information passes between queries; its norm and FFN still run (the
                      `no-interaction` ablation, trained without the block, is a different thing);
first_frame_queries   each object keeps the query it got on the frame it was given (the Table 3e
                      "first" rule) instead of the previous frame's;
head_knocked_out      one head of one attention layer contributes nothing (its columns of the
                      output projection are zero).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch

from ..errors import UserError

ATTENTION_LAYERS = ("qcim-cross", "qcim-self", "sim")


@contextmanager
def patched(obj, name: str, replacement):
    """Set attribute `name` of `obj` (e.g. a bound method, as an instance attribute) while open."""
    had, old = name in vars(obj), vars(obj).get(name)
    setattr(obj, name, replacement)
    try:
        yield obj
    finally:
        if had:
            setattr(obj, name, old)
        else:
            delattr(obj, name)


def _require_queries(network, what: str) -> None:
    if not getattr(network, "uses_queries", False):
        raise UserError(f"{what}: the network is XMem, which has no object queries; pass a QMVOS network")


@contextmanager
def _queries_before_decoder(network, transform: Callable[[torch.Tensor], torch.Tensor], what: str):
    """Apply `transform` (B x N x C -> B x N x C) to the queries `network.segment` receives."""
    _require_queries(network, what)
    segment = network.segment

    def intervened(features, readout, hidden, *, queries=None, **kwargs):
        return segment(features, readout, hidden, queries=None if queries is None else transform(queries), **kwargs)

    with patched(network, "segment", intervened):
        yield network


def cyclic_permutation(n: int, shift: int = 1) -> list[int]:
    """Index list p with p[i] = (i + shift) mod n: object i is given object p[i]'s query."""
    return [(i + shift) % n for i in range(n)]


def permuted_queries(network, shift: int = 1, permutation=None):
    """Object i is decoded with the query of object permutation[i] (default: a cyclic shift, so that
    with N >= 2 no object keeps its own). An explicit permutation must have one entry per object."""
    def transform(queries):
        n = queries.shape[1]
        order = cyclic_permutation(n, shift) if permutation is None else list(permutation)
        if sorted(order) != list(range(n)):
            raise UserError(f"permuted_queries: {order} is not a permutation of the {n} objects' queries; "
                            f"give one index per object, each once, or leave it out for a cyclic shift")
        return queries[:, order]

    return _queries_before_decoder(network, transform, "permuted_queries")


def mean_queries(network):
    """Every object's query is replaced by the mean query of the frame (B x N x C, all rows equal)."""
    return _queries_before_decoder(network, lambda q: q.mean(1, keepdim=True).expand_as(q).contiguous(),
                                   "mean_queries")


@contextmanager
def without_qcim(network):
    """The QCIM (QMVOS Eq. 3, its cross-attention Eq. 4) is skipped: the refined queries are the SIM's."""
    _require_queries(network, "without_qcim")

    def skip(queries, content, object_valid=None, content_valid=None, need_weights=False, *, identity=None):
        if need_weights:
            raise UserError("without_qcim: there is no QCIM attention to record; record attention without "
                            "this intervention")
        return queries, None

    with patched(network.decoder.QCIM, "forward", skip):
        yield network


@contextmanager
def without_sim_interaction(network):
    """The SIM's self-attention (QMVOS Eq. 2) is restricted to the diagonal: each query attends to
    itself only, so no query reads another; the rest of the block (norms, FFN) runs as trained."""
    _require_queries(network, "without_sim_interaction")
    block = getattr(network, "query_SelfAtt_FFN", None)
    if block is None:
        raise UserError("without_sim_interaction: this network has no SIM interaction (trained as "
                        "no-interaction); nothing to drop")
    attention = block.self_attn
    forward = attention.forward

    def self_only(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None, **kwargs):
        n = query.shape[-2]
        others = ~torch.eye(n, dtype=torch.bool, device=query.device)  # N x N, True = not attended
        if attn_mask is not None:
            raise UserError("without_sim_interaction: the SIM was called with its own attention mask; "
                            "this intervention cannot combine with it")
        return forward(query, key, value, key_padding_mask=key_padding_mask, need_weights=need_weights,
                       attn_mask=others, **kwargs)

    with patched(attention, "forward", self_only):
        yield network


@contextmanager
def first_frame_queries(network):
    """Objects that already have a query keep it (the query of the frame they were given on); only
    objects new on a frame take the SIM's. The same as query_propagation="first" (Table 3e)."""
    _require_queries(network, "first_frame_queries")
    propagate = network.propagate_queries

    def keep_first(features, prob_with_bg, previous, object_valid=None, *, need_weights=False):
        queries, weights = propagate(features, prob_with_bg, previous, object_valid, need_weights=need_weights)
        if previous is not None:
            queries = torch.cat([previous, queries[:, previous.shape[1]:]], dim=1)  # B x N x C
        return queries, weights

    with patched(network, "propagate_queries", keep_first):
        yield network


def attention_layer(network, layer: str) -> torch.nn.MultiheadAttention:
    """The nn.MultiheadAttention of `layer`: "qcim-cross" (QMVOS Eq. 4), "qcim-self"
    (the SA of QMVOS Eq. 3), "sim" (the SA of QMVOS Eq. 2)."""
    _require_queries(network, "attention_layer")
    layers = {"qcim-cross": lambda: network.decoder.QCIM.cross_attn,
              "qcim-self": lambda: network.decoder.QCIM.self_attn,
              "sim": lambda: getattr(getattr(network, "query_SelfAtt_FFN", None), "self_attn", None)}
    if layer not in layers:
        raise UserError(f"unknown attention layer {layer!r}; choose from {', '.join(ATTENTION_LAYERS)}")
    module = layers[layer]()
    if module is None:
        raise UserError(f"this network has no {layer} attention (trained without the SIM interaction)")
    return module


@contextmanager
def head_knocked_out(network, head: int, layer: str = "qcim-cross"):
    """Head `head` of `layer` (ATTENTION_LAYERS) contributes nothing: the columns of the output
    projection that read it are zero while open (the original weight tensor is put back on exit)."""
    attention = attention_layer(network, layer)
    heads = attention.num_heads
    if not 0 <= int(head) < heads:
        raise UserError(f"head_knocked_out: head {head} is not one of the {heads} heads of {layer}; "
                        f"pick 0..{heads - 1}")
    width = attention.embed_dim // heads
    weight = attention.out_proj.weight
    original = weight.data
    knocked = original.clone()
    knocked[:, int(head) * width:(int(head) + 1) * width] = 0  # C x C: the inputs from this head's values
    weight.data = knocked
    try:
        yield network
    finally:
        weight.data = original


def available_interventions(network, heads: bool = True, layer: str = "qcim-cross") -> dict[str, Callable]:
    """The interventions that apply to `network`, by name: each value takes the network and returns
    the context manager. With `heads`, one knock-out per head of `layer`."""
    _require_queries(network, "available_interventions")
    out = {"permuted queries": permuted_queries, "mean query": mean_queries, "no QCIM": without_qcim}
    if getattr(network, "query_SelfAtt_FFN", None) is not None:
        out["no SIM interaction"] = without_sim_interaction
    if network.config.query_propagation != "first":
        out["first-frame queries"] = first_frame_queries
    if heads:
        for k in range(attention_layer(network, layer).num_heads):
            out[f"{layer} head {k} off"] = (lambda net, k=k: head_knocked_out(net, k, layer))
    return out
