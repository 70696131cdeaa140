"""Configuration dataclasses: one object per concern, passed down explicitly."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class ModelConfig:
    """Dimensions of the XMem network (XMem Sec. 3; defaults of the released models).

    key_dim:    C^k, channels of keys and selection.
    value_dim:  C^v, channels of memory values.
    hidden_dim: C^h, channels of the sensory memory; 0 disables it (the "no sensory" variant).
    single_object: the value encoder sees RGB + mask only (4 input channels, XMem stage 0);
        otherwise RGB + mask + other objects' masks (5 channels).
    """

    key_dim: int = 64
    value_dim: int = 512
    hidden_dim: int = 64
    single_object: bool = False

    def __post_init__(self):
        for name in ("key_dim", "value_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ModelConfig.{name} must be positive, got {getattr(self, name)}")
        if self.hidden_dim < 0:
            raise ValueError(f"ModelConfig.hidden_dim must be >= 0 (0 = no sensory memory), got {self.hidden_dim}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {unknown}; known fields are {sorted(known)}")
        return cls(**values)
