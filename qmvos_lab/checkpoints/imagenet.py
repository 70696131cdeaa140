"""ImageNet initialisation of the encoders (XMem's training starts from these): torchvision's
ResNet-50 / ResNet-18 weights copied into the key and value encoders."""

from __future__ import annotations

import os

import torch
import torch.nn as nn

from ..errors import CheckpointError
from ..model import XMem
from .reading import read_state_dict


def _imagenet_state(source, weights_enum) -> dict:
    if source is None:  # torchvision's download into its own cache (needs a connection)
        try:
            return weights_enum.IMAGENET1K_V1.get_state_dict(progress=True)
        except Exception as error:  # noqa: BLE001 - any network failure gets the same advice
            raise CheckpointError(f"cannot download torchvision ImageNet weights ({type(error).__name__}); "
                                  "pass a local file saved from torchvision instead") from None
    state, _ = read_state_dict(source)
    return state


def init_from_imagenet(model: XMem, resnet50: str | os.PathLike | None = None,
                       resnet18: str | os.PathLike | None = None, seed: int | None = None) -> XMem:
    """Copy ImageNet ResNet-50 (key encoder; ResNet-18 for the "small" size) and ResNet-18 (value
    encoder) weights into `model`.

    Sources are torchvision state-dict files, or None to use torchvision's download. The value
    encoder's extra mask channels are initialised orthogonally, as upstream. Returns `model`.
    """
    import torchvision

    r18 = _imagenet_state(resnet18, torchvision.models.ResNet18_Weights)
    if model.config.backbone == "resnet18":  # the "small" size: ResNet-18 for both encoders
        key_state, key_file, key_label = r18, resnet18, "ResNet-18"
    else:
        key_state = _imagenet_state(resnet50, torchvision.models.ResNet50_Weights)
        key_file, key_label = resnet50, "ResNet-50"
    key_encoder_map = {"res2": "layer1"}  # our attribute -> torchvision prefix

    def source_for(name, param, state, file, label):
        """The matching tensor of `state`; only the mask channels of conv1 may be missing."""
        value = state.get(name)
        fits = value is not None and (value.shape == param.shape or (
            name == "conv1.weight" and value.shape[:1] + value.shape[2:] == param.shape[:1] + param.shape[2:]))
        if not fits:
            raise CheckpointError(f"{label} weights {file or 'from torchvision'} lack {name} of shape "
                                  f"{tuple(param.shape)}: is it a torchvision {label} file?")
        return value

    with torch.no_grad():
        for name, param in model.key_encoder.state_dict().items():
            top, _, rest = name.partition(".")
            param.copy_(source_for(f"{key_encoder_map.get(top, top)}.{rest}", param, key_state, key_file, key_label))
        for name, param in model.value_encoder.state_dict().items():
            if name.startswith(("fuser.", "hidden_reinforce.")):
                continue  # not part of ResNet-18
            source = source_for(name, param, r18, resnet18, "ResNet-18")
            if source.shape != param.shape:  # conv1: RGB weights + orthogonal mask channels, as upstream
                extra = torch.empty(param.shape[0], param.shape[1] - source.shape[1], *param.shape[2:])
                generator = torch.Generator().manual_seed(seed) if seed is not None else None
                _orthogonal_(extra, generator)
                source = torch.cat([source, extra], 1)
            param.copy_(source)
    return model


def _orthogonal_(tensor: torch.Tensor, generator: torch.Generator | None) -> None:
    """nn.init.orthogonal_ with an optional generator (older torch has no generator argument)."""
    try:
        nn.init.orthogonal_(tensor, generator=generator)
    except TypeError:
        nn.init.orthogonal_(tensor)
