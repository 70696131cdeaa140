"""Segment a video frame by frame: the step API for notebooks and the loop behind
`qmvos-lab segment`.

`VideoSegmenter.step(image, mask)` takes an RGB frame (H x W x 3 uint8, or float in [0, 1]) and,
optionally, a label map (H x W of object ids, any ids 1..254, 0 background, 255 void/ignored);
both are checked at this edge (inference/inputs.py) with one-line UserErrors. Ids need not be
contiguous: they are mapped to internal indices 1..N in order of appearance, and back on output.
A mask on a later frame adds its new objects; objects that it does not contain keep their
prediction outside its foreground, and objects it does contain are reset to it.
Frames are resized (shorter side to `config.size`) for the network and results come back at
the frame's own resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..config import InferenceConfig
from ..data.masks import VOID_LABEL
from ..errors import UserError
from .core import InferenceCore
from .fast import autocast, prepare_network
from .inputs import check_frame_size, check_image, check_mask
from .preprocess import resize_image, resize_masks, resized_shape, to_image_tensor
from .trace import FrameTrace

MAX_OBJECTS = 255


@dataclass
class FrameResult:
    """One segmented frame at its original resolution.

    labels: H x W uint8 map of the original object ids (0 background).
    prob: (N + 1) x H x W float probabilities: background, then objects by ascending id.
    object_ids: the ids of the N prob channels after the background, ascending.
    attention: QMVOS only, with record_attention: the QCIM attention of this frame, with queries
        and objects in internal order (`internal_ids`): "self" 1 x N x heads x N and "cross"
        1 x N x heads x N_obj x h x w over the stride-16 readout grid of each object.
    trace: with trace=True, everything inference computed for this frame (see inference/trace.py),
        on the network's (resized, padded) grid, objects in internal order.
    """

    index: int
    labels: np.ndarray
    prob: torch.Tensor
    object_ids: list[int]
    attention: dict | None = None
    internal_ids: list[int] | None = None
    trace: FrameTrace | None = None


class VideoSegmenter:
    """Segments one video, frame by frame. `amp`, `channels_last` and `compile` are the fast-path
    switches of inference/fast.py (all off: the exact fp32 path); the last two change `network`
    in place."""

    def __init__(self, network, config: InferenceConfig | None = None, device: str | torch.device = "cpu",
                 amp: bool = False, record_attention: bool = False, trace: bool = False,
                 channels_last: bool = False, compile: bool = False):
        self.network = prepare_network(network, channels_last=channels_last, compile=compile)
        self.config = config or InferenceConfig()
        self.device = torch.device(device)
        self.amp = amp
        self.core = InferenceCore(network, self.config, record_attention=record_attention, trace=trace)
        self.object_ids: list[int] = []  # original id of internal object i + 1
        self.frame_index = -1
        self.frame_shape: tuple[int, int] | None = None  # (H, W) of the first frame

    # ------------------------------------------------------------------------------ objects
    def _new_mask(self, mask: np.ndarray, height: int, width: int) -> tuple[torch.Tensor, list[int]]:
        """Register the mask's new ids; return the one-hot over all known objects and the valid ones."""
        ids = [int(i) for i in np.unique(mask) if i != 0 and i != VOID_LABEL]  # mask: checked by step
        new_ids = [i for i in ids if i not in self.object_ids]
        if len(self.object_ids) + len(new_ids) > MAX_OBJECTS:
            raise UserError(f"more than {MAX_OBJECTS} objects ({len(self.object_ids) + len(new_ids)}); "
                            "merge or drop some labels")
        if any(i > 254 for i in new_ids):
            raise UserError(f"label id {max(new_ids)} does not fit an 8-bit palette PNG; use ids 1..254")
        self.object_ids += sorted(new_ids)
        self.core.set_all_labels(list(range(1, len(self.object_ids) + 1)))
        labels = torch.from_numpy(mask.astype(np.int64)).to(self.device)
        one_hot = torch.stack([labels == i for i in self.object_ids]).float()  # N x H x W
        valid = [self.object_ids.index(i) + 1 for i in ids]
        return one_hot, valid

    def delete_objects(self, ids: Iterable[int]) -> None:
        """Stop tracking objects (by original id)."""
        ids = [int(i) for i in ids]
        unknown = [i for i in ids if i not in self.object_ids]
        if unknown:
            raise UserError(f"cannot delete unknown object ids {unknown}; tracked ids are {self.object_ids}")
        self.core.delete_objects([self.object_ids.index(i) + 1 for i in ids])
        self.object_ids = [i for i in self.object_ids if i not in ids]

    # ------------------------------------------------------------------------------ stepping
    def step(self, image, mask: np.ndarray | None = None, end: bool = False) -> FrameResult:
        """Segment one frame (H x W x 3 uint8, or float in [0, 1]); `mask` is an optional H x W label map.
        Bad input raises a one-line UserError and leaves the segmenter as it was."""
        array = check_image(image)
        height, width = array.shape[:2]
        check_frame_size((height, width), self.frame_shape, self.config.size, self.frame_index + 1)
        if mask is not None:
            mask = check_mask(mask, (height, width))
            if not self.object_ids and not ((mask != 0) & (mask != VOID_LABEL)).any():
                content = "0 (background)" if not mask.any() else f"0 (background) or {VOID_LABEL} (void)"
                raise UserError(f"the first mask holds no object: every pixel is {content}; give each object its "
                                f"own id 1..254 ({VOID_LABEL} is void: pass (mask == {VOID_LABEL}) for a "
                                f"0/{VOID_LABEL} binary mask)")
        self.frame_index += 1
        self.frame_shape = (height, width)
        if mask is None and not self.object_ids:  # nothing to track yet: wait for the first mask
            return FrameResult(self.frame_index, np.zeros((height, width), np.uint8),
                               torch.ones(1, height, width), [])
        net_shape = resized_shape(height, width, self.config.size)
        frame = resize_image(to_image_tensor(array, self.device), net_shape)
        one_hot = valid = None
        if mask is not None:
            one_hot, valid = self._new_mask(mask, height, width)
            one_hot = resize_masks(one_hot, net_shape)
        with autocast(self.device, self.amp):
            prob = self.core.step(frame, one_hot, valid, end=end)  # (N + 1) x h x w
        prob = prob.float()
        if prob.shape[-2:] != (height, width):
            prob = F.interpolate(prob[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        order = np.argsort(self.object_ids)  # channels by ascending id
        prob = prob[[0] + [int(i) + 1 for i in order]]
        ids_sorted = [self.object_ids[i] for i in order]
        lookup = torch.tensor([0] + ids_sorted, device=prob.device, dtype=torch.uint8)
        labels = lookup[prob.max(0).indices].cpu().numpy()  # the argmax (max's indices: faster on a CPU)
        attention, self.core.last_attention = self.core.last_attention, None
        trace, self.core.last_trace = self.core.last_trace, None
        return FrameResult(self.frame_index, labels, prob, ids_sorted, attention, list(self.object_ids), trace)


def segment_video(segmenter: VideoSegmenter, frames: Iterable, masks: dict[int, np.ndarray],
                  num_frames: int | None = None) -> Iterator[FrameResult]:
    """Yield a FrameResult per frame; `masks` maps frame indices to label maps."""
    for index, image in enumerate(frames):
        end = num_frames is not None and index == num_frames - 1
        yield segmenter.step(image, masks.get(index), end=end)
