"""The network: XMem, and QMVOS (XMem with object queries)."""

from ..config import ModelConfig
from .aggregate import aggregate, hard_masks
from .memory_read import get_similarity, read_memory, readout, softmax_affinity
from .network import SegmentOutput, XMem
from .qmvos import QMVOS


def build_network(config: ModelConfig | None = None) -> XMem:
    """XMem, or QMVOS when `config.queries` is set."""
    config = config or ModelConfig()
    return QMVOS(config) if config.queries else XMem(config)


__all__ = ["XMem", "QMVOS", "SegmentOutput", "build_network", "aggregate", "hard_masks", "get_similarity",
           "read_memory", "readout", "softmax_affinity"]
