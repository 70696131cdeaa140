"""The ablations of QMVOS Table 3, by name: each is a set of ModelConfig switches (and one variant
beyond the paper, qcim-identity, labelled so)."""

from __future__ import annotations

from .config import ModelConfig

ABLATIONS = {
    "xmem": {"queries": False},  # the baseline: no queries
    "qmvos": {"queries": True},  # the full model (released variant)
    "sim-f16": {"queries": True, "sim_scales": ("f16",)},  # Table 3b
    "sim-f8": {"queries": True, "sim_scales": ("f8",)},
    "sim-f16-f8-f4": {"queries": True, "sim_scales": ("f16", "f8", "f4")},
    "no-interaction": {"queries": True, "sim_interaction": False},  # Table 3c
    "qcim-f16": {"queries": True, "qcim_source": "f16"},  # Table 3d
    "first-frame-queries": {"queries": True, "query_propagation": "first"},  # Table 3e
    # beyond the paper (issue 26's remedy): object-identity codes on the QCIM's queries and keys
    "qcim-identity": {"queries": True, "qcim_identity": True},
}

BEYOND_THE_PAPER = ("qcim-identity",)  # variants of ABLATIONS that QMVOS Table 3 does not have


def model_config(name: str, size: str = "base", **dims) -> ModelConfig:
    """The ModelConfig of a named ablation at a named size (MODEL_SIZES), with `dims` on top."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; choose from {', '.join(ABLATIONS)}")
    return ModelConfig.of_size(size, **dims, **ABLATIONS[name])
