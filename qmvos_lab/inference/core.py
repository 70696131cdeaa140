"""The per-frame inference step of XMem (Sec. 3.1 and Fig. 2): encode the frame's key, read the
memory, segment, and (on memory frames) encode the value and store it.

`InferenceCore` works on prepared tensors and internal object indices 1..N; `VideoSegmenter`
(video.py) wraps it with image/label I/O, resizing and label-id mapping. Semantics follow the
official `InferenceCore.step`.
"""

from __future__ import annotations

import torch

from ..config import InferenceConfig
from ..model.aggregate import aggregate
from .memory_manager import MemoryManager
from .preprocess import pad_to_multiple, unpad


class InferenceCore:
    """With a QMVOS network, the core also carries the object queries from frame to frame
    (QMVOS Sec. 3.2): after each frame they are rebuilt by the SIM from the frame's hard
    prediction (merged with any given mask), or, with query_propagation="first", kept from the
    frame where each object was given. With `record_attention`, the QCIM attention of the last
    segmented frame is kept in `last_attention` (see QMVOS.segment)."""

    def __init__(self, network, config: InferenceConfig | None = None, record_attention: bool = False):
        self.network = network
        self.config = config or InferenceConfig()
        self.record_attention = record_attention
        self.clear_memory()

    def clear_memory(self) -> None:
        self.frame_index = -1
        self.last_memory_index = 0
        self.last_deep_update_index = -self.config.deep_update_every
        self.memory = MemoryManager(self.config, self.network.hidden_dim)
        self.all_labels: list[int] = []  # internal object indices 1..N
        self.queries: torch.Tensor | None = None  # 1 x N x C (QMVOS only)
        self.last_attention: dict | None = None

    @property
    def num_objects(self) -> int:
        return len(self.all_labels)

    def set_all_labels(self, labels: list[int]) -> None:
        self.all_labels = list(labels)

    @torch.inference_mode()
    def step(self, image: torch.Tensor, mask: torch.Tensor | None = None,
             valid_labels: list[int] | None = None, end: bool = False) -> torch.Tensor:
        """Process one frame.

        image: 3 x H x W, normalised. mask: N x H x W (one channel per known object, N =
        len(all_labels)) or None. valid_labels: the objects that `mask` defines; the others keep
        their prediction outside the mask's foreground. end: the last frame (nothing is stored).
        Returns probabilities (N + 1) x H x W, background first.
        """
        config = self.config
        self.frame_index += 1
        image, pad = pad_to_multiple(image, 16)
        image = image.unsqueeze(0)  # 1 x 3 x H' x W'
        deep_sync = config.deep_update_every < 0

        is_memory_frame = ((self.frame_index - self.last_memory_index >= config.mem_every)
                           or mask is not None) and not end
        need_segment = self.frame_index > 0 and (valid_labels is None or len(self.all_labels) != len(valid_labels))
        is_deep_update = ((deep_sync and is_memory_frame) or (
            not deep_sync and self.frame_index - self.last_deep_update_index >= config.deep_update_every)) and not end
        is_normal_update = (not deep_sync or not is_deep_update) and not end

        key, shrinkage, selection, f16, f8, f4 = self.network.encode_key(
            image, need_shrinkage=is_memory_frame, need_selection=(config.enable_long_term or need_segment))

        prob_no_bg = prob_with_bg = None
        if need_segment:
            readout = self.memory.match_memory(key, selection).unsqueeze(0)  # 1 x N x Cv x h x w
            if self.network.uses_queries:
                out = self.network.segment((f16, f8, f4), readout, self.memory.hidden, self.queries,
                                           h_out=is_normal_update, strip_bg=False, need_weights=self.record_attention)
                hidden, _, prob_with_bg = out[:3]
                self.last_attention = out[3] if self.record_attention else None
            else:
                hidden, _, prob_with_bg = self.network.segment((f16, f8, f4), readout, self.memory.hidden,
                                                               h_out=is_normal_update, strip_bg=False)
            prob_with_bg = prob_with_bg[0]  # (N + 1) x H' x W'
            prob_no_bg = prob_with_bg[1:]
            if is_normal_update:
                self.memory.hidden = hidden

        if mask is not None:
            mask, _ = pad_to_multiple(mask, 16)
            mask = mask.to(image.dtype if prob_no_bg is None else prob_no_bg.dtype)
            if prob_no_bg is not None:
                # the given mask wins where it is foreground; objects it does not define keep their prediction
                prob_no_bg = prob_no_bg.clone()
                prob_no_bg[:, mask.sum(0) > 0.5] = 0
                mask = mask.clone()
                kept = [i for i in range(prob_no_bg.shape[0]) if (i + 1) not in (valid_labels or [])]
                mask[kept] = prob_no_bg[kept]
            prob_with_bg = aggregate(mask, dim=0)
            self.memory.create_hidden_state(len(self.all_labels), key)

        if self.network.uses_queries and not end:
            self.update_queries((f16, f8, f4), prob_with_bg)

        if is_memory_frame:
            value, hidden = self.network.encode_value(image, f16, self.memory.hidden, prob_with_bg[1:].unsqueeze(0),
                                                      deep_update=is_deep_update)
            self.memory.add_memory(key, shrinkage, value, self.all_labels,
                                   selection=selection if config.enable_long_term else None)
            self.last_memory_index = self.frame_index
            if is_deep_update:
                self.memory.hidden = hidden
                self.last_deep_update_index = self.frame_index

        return unpad(prob_with_bg, pad)

    def update_queries(self, features, prob_with_bg: torch.Tensor) -> None:
        """Queries for the next frame from this frame's hard masks (argmax of (N + 1) x H x W)."""
        num_objects = prob_with_bg.shape[0] - 1
        hard = prob_with_bg.argmax(0)  # H x W, 0 = background
        masks = torch.stack([hard == i for i in range(1, num_objects + 1)]).unsqueeze(0)  # 1 x N x H x W
        queries, _ = self.network.init_queries(features, masks)
        have = 0 if self.queries is None else self.queries.shape[1]
        if self.network.config.query_propagation == "first" and have:
            queries = torch.cat([self.queries, queries[:, have:]], 1)  # known objects keep theirs
        self.queries = queries

    def delete_objects(self, labels: list[int]) -> None:
        """Forget internal objects (1-based); the remaining ones are renumbered 1..N in order."""
        self.memory.delete_objects(labels)
        if self.queries is not None:
            keep = [i for i in range(self.queries.shape[1]) if (i + 1) not in set(labels)]
            self.queries = self.queries[:, keep]
        self.all_labels = list(range(1, len(self.all_labels) - len(set(labels)) + 1))
