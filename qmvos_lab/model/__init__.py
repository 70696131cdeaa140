"""The network: XMem (and, from the QMVOS issue on, its query-modulated variant)."""

from .aggregate import aggregate
from .memory_read import get_similarity, read_memory, readout, softmax_affinity
from .network import XMem

__all__ = ["XMem", "aggregate", "get_similarity", "read_memory", "readout", "softmax_affinity"]
