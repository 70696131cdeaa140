"""Load official and QMVOS Lab checkpoints, and ImageNet weights for the encoders.

Accepted sources: a local file, an http(s) URL (downloaded once into the cache folder, with
progress), or the name of a released model (`XMem`, `XMem-s012`, ..., and `QMVOS`, fetched from
Google Drive by release.py). Accepted contents: a bare
state dict (as released), an official training checkpoint (`{"network": ..., "optimizer": ...}`),
a DistributedDataParallel state dict (`module.` prefixes), or a QMVOS Lab checkpoint
(`{"format": "qmvos-lab", "config": ..., "network": ...}`).

The network's dimensions are read from the weights, as XMem does (key from
`key_proj.key_proj.weight`, value from `value_encoder.fuser.block2.conv2.weight`, hidden from
`decoder.hidden_update.transform.weight`, absent in the no-sensory model; the backbone from
the key projection's input channels and the decoder's widths from its convolutions). The single-object
stage-0 weights (4-channel first value conv) are zero-padded to 5 channels, as the official
evaluation does, which leaves every output unchanged while the extra channel is 0.
"""

from __future__ import annotations

import errno
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn as nn

from .atomic import atomic_path
from .config import BACKBONE_CHANNELS, ModelConfig
from .cache import cache_root, cache_setting, check_cache, checkpoints_dir
from .download import download
from .errors import CheckpointError, DownloadError, not_a_file
from .model import XMem, build_network

RELEASE_URL = "https://github.com/hkchengrex/XMem/releases/download/v1.0/"
OFFICIAL_CHECKPOINTS = {
    "XMem": RELEASE_URL + "XMem.pth",
    "XMem-s012": RELEASE_URL + "XMem-s012.pth",
    "XMem-s2": RELEASE_URL + "XMem-s2.pth",
    "XMem-no-sensory": RELEASE_URL + "XMem-no-sensory.pth",
}

RELEASE_NAMES = ("QMVOS",)  # the released QMVOS weights, on Google Drive (release.RELEASES)

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


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def resolve_source(source: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                   progress: bool = True) -> Path:
    """A local path for `source`: the file itself, or the cached download of a URL or release name."""
    source = str(source)
    if source in RELEASE_NAMES:  # published on Google Drive: release.py
        from .release import fetch_release

        return fetch_release(source, cache_dir, progress)
    if source in OFFICIAL_CHECKPOINTS:
        source = OFFICIAL_CHECKPOINTS[source]
    if urlparse(source).scheme in ("http", "https"):
        cache = Path(cache_dir) if cache_dir is not None else checkpoints_dir()
        name = Path(urlparse(source).path).name or "checkpoint.pth"
        if not (cache / name).is_file():
            check_cache(cache if cache_dir is not None else cache_root(), cache_setting(cache_dir))
        try:
            return download(source, cache / name, progress=progress)
        except DownloadError as error:
            raise CheckpointError(str(error)) from None
    path = Path(source).expanduser()
    if path.is_dir():
        inside = ", ".join(p.name for p in sorted(path.glob("*.pth"))[:3])
        raise CheckpointError(f"checkpoint {source} is a folder, not a file; give "
                              f"{f'one of the files in it ({inside})' if inside else 'a .pth file'}")
    why = not_a_file(path)
    if why == "not found":
        known = ", ".join([*OFFICIAL_CHECKPOINTS, *RELEASE_NAMES])
        raise CheckpointError(f"checkpoint {source} not found: give a file, a URL, or one of {known}")
    if why is not None:
        raise CheckpointError(f"checkpoint {source} {why}")
    return path


def _not_a_torch_save_file(path) -> str | None:
    """A one-line diagnosis of a file that is not a torch.save checkpoint, from its first bytes
    (a TorchScript archive, a safetensors file, an empty or a text file), or None."""
    with open(path, "rb") as f:
        head = f.read(256)
    advice = "give a file saved with torch.save (a state dict or a QMVOS Lab checkpoint)"
    if not head:
        return f"cannot read checkpoint {path}: it is empty (0 bytes); {advice}"
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return None
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            return (f"cannot read checkpoint {path}: it is a TorchScript archive (torch.jit.save), which holds code "
                    "rather than weights; save its state_dict() with torch.save and give that file")
        return None
    header = int.from_bytes(head[:8], "little") if len(head) >= 9 else 0
    if Path(path).suffix == ".safetensors" or (0 < header < 2 ** 27 and head[8:9] == b"{"):
        return (f"cannot read checkpoint {path}: it is a safetensors file; convert it with "
                "torch.save(safetensors.torch.load_file(PATH), 'weights.pth') and give the .pth file")
    if head[:1] != b"\x80":  # every pickle protocol >= 2 starts so
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not text.strip() or not all(c.isprintable() or c in "\t\r\n" for c in text):
            return None  # binary: torch.load says what it can
        first = text.strip().splitlines()[0][:40]
        return f"cannot read checkpoint {path}: it is a text file (it begins {first!r}), not a PyTorch file; {advice}"
    return None


def read_state_dict(path: str | os.PathLike) -> tuple[dict, dict | None]:
    """Load a checkpoint file on the CPU. Returns (state dict, saved QMVOS Lab config or None)."""
    state, saved_config, _ = read_checkpoint_file(path)
    return state, saved_config


def read_checkpoint_file(path: str | os.PathLike) -> tuple[dict, dict | None, int]:
    """Load a checkpoint file on the CPU. Returns (state dict, saved QMVOS Lab config or None,
    the inference size its training recipe saved: -1 for other files)."""
    why = not_a_file(path)
    if why is not None:
        raise CheckpointError(f"checkpoint {path} {why}")
    diagnosis = _not_a_torch_save_file(path)
    if diagnosis is not None:
        raise CheckpointError(diagnosis)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's TorchScript notice: diagnosed above
            content = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            AttributeError, ImportError, IndexError, KeyError, TypeError, OSError) as error:
        if isinstance(error, OSError) and error.errno != errno.EINVAL:  # EINVAL: torch's zip reader on a cut file
            raise
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if len(first_line) > 120:  # cut at a word, never mid-word
            first_line = first_line[:120].rsplit(" ", 1)[0].rstrip(".,:;") + " ..."
        cached = cache_root().resolve() in Path(path).resolve().parents
        advice = ("delete it so that it downloads again" if cached
                  else "check that it is the checkpoint you meant (a file saved with torch.save)")
        raise CheckpointError(f"cannot read checkpoint {path}: not a PyTorch file, truncated, or "
                              f"not loadable safely ({first_line}); {advice}") from None
    if not isinstance(content, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(content).__name__}, not a state dict")
    ours = content.get("format") == "qmvos-lab"
    saved_config = content.get("config") if ours else None
    inference_size = content.get("inference_size", -1) if ours else -1
    if not isinstance(inference_size, int) or isinstance(inference_size, bool):
        raise CheckpointError(f"checkpoint {path}: its inference_size is a {type(inference_size).__name__}, "
                              "not an integer; re-save it with save_checkpoint")
    for wrapper in ("network", "model", "state_dict"):
        if isinstance(content.get(wrapper), dict):
            content = content[wrapper]
            break
    state = {}
    for name, value in content.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"checkpoint {path} is not a state dict: entry {name!r} is a "
                                  f"{type(value).__name__}, not a tensor")
        state[name.removeprefix("module.")] = value
    return state, saved_config, inference_size


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
                    if k in ("sim_scales", "sim_interaction", "qcim_source", "query_propagation")
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
                       qcim_source="readout" if "decoder.g16_proj.weight" in state else "f16")


def pad_single_object_value_conv(state: dict) -> dict:
    """Zero-pad the first value conv from RGB+mask (4 ch) to RGB+mask+others (5 ch).

    With a zero kernel for the new channel the network ignores the other objects' masks, so the
    multi-object network computes exactly what the single-object one did (as the official eval).
    """
    weight = state[VALUE_CONV]
    if weight.shape[1] != 4:
        return state
    pad = torch.zeros(weight.shape[0], 1, *weight.shape[2:], dtype=weight.dtype)  # Cout x 1 x 7 x 7
    return {**state, VALUE_CONV: torch.cat([weight, pad], 1)}


def load_state_dict_checked(model: nn.Module, state: dict, source: str = "<state dict>") -> None:
    """`load_state_dict(strict=True)` with a one-line error naming the first offending keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in state and state[k].shape != v.shape]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (checkpoint vs network), first: {'; '.join(mismatched[:3])}")
    if missing:
        problems.append(f"{len(missing)} missing keys, first: {', '.join(missing[:3])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys, first: {', '.join(unexpected[:3])}")
    if problems:
        raise CheckpointError(f"checkpoint {source} does not fit the network: " + " | ".join(problems))
    model.load_state_dict(state, strict=True)


def load_checkpoint(source: str | os.PathLike, device: str | torch.device = "cpu",
                    cache_dir: str | os.PathLike | None = None, progress: bool = True) -> XMem:
    """Build the network that a checkpoint describes and load it strictly (eval mode).

    The returned model carries `model.checkpoint_info` (variant, config, conversion notes).
    """
    path = resolve_source(source, cache_dir, progress)
    state, saved_config, inference_size = read_checkpoint_file(path)
    info = inspect_state_dict(state, str(source), saved_config)
    state = pad_single_object_value_conv(state)
    model = build_network(info.config)
    load_state_dict_checked(model, state, str(source))
    model.checkpoint_info = info
    model.inference_size = inference_size
    return model.to(device).eval()


def qmvos_from_xmem(source, config: ModelConfig | None = None, progress: bool = True):
    """A QMVOS network initialised from an XMem checkpoint: every shared weight is copied, the new
    modules (SIM, QCIM, projections) keep their fresh initialisation, and XMem's prediction conv,
    which QMVOS replaces by its queries, is left out. Returns (model, report dict)."""
    xmem = load_checkpoint(source, progress=progress)
    base = xmem.config
    if base.queries:
        raise CheckpointError(f"checkpoint {source} is already a QMVOS network; load it with load_checkpoint")
    config = config or ModelConfig(**base.dimensions(), queries=True)
    if config.dimensions() != base.dimensions():
        raise CheckpointError(f"checkpoint {source} has dimensions {base.dimensions()} that differ from the "
                              f"requested QMVOS config's {config.dimensions()}")
    model = build_network(config)
    target = model.state_dict()
    shared = {k: v for k, v in xmem.state_dict().items() if k in target and v.shape == target[k].shape}
    model.load_state_dict(shared, strict=False)
    report = {"copied": sorted(shared), "unused": sorted(set(xmem.state_dict()) - set(shared)),
              "new": sorted(set(target) - set(shared))}
    model.checkpoint_info = CheckpointInfo(str(source), "qmvos (initialised from XMem)", config,
                                           [f"unused XMem weights: {', '.join(report['unused'])}",
                                            f"{len(report['new'])} new QMVOS tensors freshly initialised"])
    return model, report


def save_checkpoint(model: XMem, path: str | os.PathLike, **extra) -> Path:
    """Write a QMVOS Lab checkpoint (network + config + its inference size + `extra`) atomically: temp
    file, then rename."""
    content = {"format": "qmvos-lab", "config": model.config.to_dict(), "network": model.state_dict(),
               "inference_size": int(getattr(model, "inference_size", -1)), **extra}
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        torch.save(content, file)  # through a Python file: a full disk is OSError(ENOSPC), not a bare RuntimeError
    return Path(path)


# --------------------------------------------------------------------------------------------
# ImageNet initialisation of the encoders (XMem's training starts from these)
# --------------------------------------------------------------------------------------------
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
