"""Reading a checkpoint file on the CPU, safely (`weights_only`): a bare state dict (as released), an
official training checkpoint (`{"network": ..., "optimizer": ...}`), a DistributedDataParallel
state dict (`module.` prefixes), or a QMVOS Lab checkpoint (`{"format": "qmvos-lab", "config": ...,
"network": ...}`). A file that is none of these is refused in one line that says what it is."""

from __future__ import annotations

import errno
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from ..cache import cache_root
from ..errors import CheckpointError, not_a_file


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
