"""Inference: the memory store, XMem's memory manager, the per-frame step, the video loop."""

from .core import InferenceCore
from .memory_manager import MemoryManager
from .trace import FrameTrace, GroupAffinity
from .video import FrameResult, VideoSegmenter, segment_video

__all__ = ["InferenceCore", "MemoryManager", "FrameResult", "FrameTrace", "GroupAffinity", "VideoSegmenter",
           "segment_video"]
