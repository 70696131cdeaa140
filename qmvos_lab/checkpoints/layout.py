"""The network a state dict describes, read from its weights, as XMem does: key from
`key_proj.key_proj.weight`, value from `value_encoder.fuser.block2.conv2.weight`, hidden from
`decoder.hidden_update.transform.weight` (absent in the no-sensory model), the backbone from the key
projection's input channels and the decoder's widths from its convolutions; QMVOS's switches from
the modules present (the released weights carry no config)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..config import BACKBONE_CHANNELS, ModelConfig
from ..errors import CheckpointError

VALUE_CONV = "value_encoder.conv1.weight"
KEY_PROJ = "key_proj.key_proj.weight"
VALUE_FUSER = "value_encoder.fuser.block2.conv2.weight"
HIDDEN_TRANSFORM = "decoder.hidden_update.transform.weight"
QCIM_MARKER = "decoder.QCIM.cross_attn.in_proj_weight"
DECODER_WIDTHS = ("decoder.fuser.block2.conv2.weight", "decoder.up_16_8.out_conv.conv2.weight",
                  "decoder.up_8_4.out_conv.conv2.weight")  # g16, g8, g4


@dataclass
class CheckpointInfo:
    """What was found in a checkpoint: the variant, the config it implies, and notes on conversions."""

    source: str
    variant: str
    config: ModelConfig
    notes: list[str] = field(default_factory=list)


def _require(state: dict, key: str, path) -> torch.Tensor:
    if key not in state:
        first = ", ".join(list(state)[:3]) or "nothing"
        raise CheckpointError(f"checkpoint {path} is not an XMem/QMVOS network: it has no {key} "
                              f"(its first keys are {first})")
    return state[key]


def inspect_state_dict(state: dict, source: str = "<state dict>",
                       saved_config: dict | None = None) -> CheckpointInfo:
    """Detect the variant and infer the ModelConfig from the weights (without building a network)."""
    value_conv = _require(state, VALUE_CONV, source)
    key_proj = _require(state, KEY_PROJ, source)
    dims = {"key_dim": key_proj.shape[0], "value_dim": _require(state, VALUE_FUSER, source).shape[0],
            "hidden_dim": state[HIDDEN_TRANSFORM].shape[0] // 3 if HIDDEN_TRANSFORM in state else 0,
            "backbone": _backbone_of(key_proj.shape[1], source),
            "decoder_dims": tuple(_require(state, name, source).shape[0] for name in DECODER_WIDTHS)}
    dims["query_dim"] = state[QCIM_MARKER].shape[1] if QCIM_MARKER in state else dims["decoder_dims"][2]
    if saved_config is not None:
        try:
            config = ModelConfig.from_dict(saved_config)
        except ValueError as error:
            raise CheckpointError(f"checkpoint {source} has an invalid saved config: {error}") from None
        if any(getattr(config, name) != value for name, value in dims.items()
               if name != "query_dim" or config.queries):
            found = ", ".join(f"{name} {value}" for name, value in dims.items())
            raise CheckpointError(f"checkpoint {source}: its saved config {saved_config} disagrees with its "
                                  f"weights ({found})")
    elif QCIM_MARKER in state:
        config = _qmvos_config_from_keys(state, dims)
    else:
        config = ModelConfig(**dims)
    notes = []
    if config.queries:
        default = ModelConfig(queries=True)
        switches = [f"{k}={v}" for k, v in config.to_dict().items()
                    if k in ("sim_scales", "sim_interaction", "qcim_source", "query_propagation", "qcim_identity")
                    and getattr(config, k) != getattr(default, k)]
        variant = f"qmvos ({', '.join(switches)})" if switches else "qmvos"
    else:
        variant = "xmem" if dims["hidden_dim"] > 0 else "xmem-no-sensory"
    if config.backbone != "resnet50" or config.decoder_dims != ModelConfig().decoder_dims:
        variant += f" [{config.backbone}, decoder {'/'.join(map(str, config.decoder_dims))}]"
    if value_conv.dim() == 4 and value_conv.shape[1] == 4 and not config.single_object:
        variant += " (single-object stage 0)"
        notes.append("single-object weights: value_encoder.conv1 zero-padded from 4 to 5 input channels")
    return CheckpointInfo(source=str(source), variant=variant, config=config, notes=notes)


def _backbone_of(f16_channels: int, source) -> str:
    for backbone, channels in BACKBONE_CHANNELS.items():
        if channels[0] == f16_channels:
            return backbone
    raise CheckpointError(f"checkpoint {source}: its key projection takes {f16_channels} channels, which "
                          f"matches no known backbone ({', '.join(BACKBONE_CHANNELS)})")


def _qmvos_config_from_keys(state: dict, dims: dict) -> ModelConfig:
    """The QMVOS switches that a bare state dict reveals (released weights carry no config)."""
    if "f8_proj.0.weight" in state:
        scales = ("f8",)
    elif "simple_upsample_block.up.1.weight" in state:
        scales = ("f16", "f8", "f4") if "f4_fuse.down.1.weight" in state else ("f16", "f8")
    else:
        scales = ("f16",)
    return ModelConfig(**dims, queries=True, sim_scales=scales,
                       sim_interaction="query_SelfAtt_FFN.norm1.weight" in state,
                       qcim_source="readout" if "decoder.g16_proj.weight" in state else "f16",
                       qcim_identity="decoder.object_identity.codes" in state)  # beyond the paper
