"""Load official and QMVOS Lab checkpoints, and ImageNet weights for the encoders.

Accepted sources (sources.py): a local file, an http(s) URL (downloaded once into the cache folder,
with progress), or the name of a released model (`XMem`, `XMem-s012`, ..., and `QMVOS`, fetched from
Google Drive by release.py). Accepted contents (reading.py): a bare state dict (as released), an
official training checkpoint, a DistributedDataParallel state dict, or a QMVOS Lab checkpoint.
The network's dimensions and switches are read from the weights (layout.py); loading, conversions
and saving are in loading.py, the ImageNet initialisation in imagenet.py.
"""

from ..errors import CheckpointError
from .imagenet import init_from_imagenet
from .layout import (DECODER_WIDTHS, HIDDEN_TRANSFORM, KEY_PROJ, QCIM_MARKER, VALUE_CONV, VALUE_FUSER,
                     CheckpointInfo, inspect_state_dict)
from .loading import (load_checkpoint, load_state_dict_checked, pad_single_object_value_conv, qmvos_from_xmem,
                      save_checkpoint)
from .reading import read_checkpoint_file, read_state_dict
from .sources import OFFICIAL_CHECKPOINTS, RELEASE_NAMES, RELEASE_URL, resolve_source

__all__ = ["CheckpointError", "CheckpointInfo", "DECODER_WIDTHS", "HIDDEN_TRANSFORM", "KEY_PROJ",
           "OFFICIAL_CHECKPOINTS", "QCIM_MARKER", "RELEASE_NAMES", "RELEASE_URL", "VALUE_CONV", "VALUE_FUSER",
           "init_from_imagenet", "inspect_state_dict", "load_checkpoint", "load_state_dict_checked",
           "pad_single_object_value_conv", "qmvos_from_xmem", "read_checkpoint_file", "read_state_dict",
           "resolve_source", "save_checkpoint"]
