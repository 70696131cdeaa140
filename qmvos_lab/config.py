"""Configuration dataclasses: one object per concern, passed down explicitly."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


SIM_SCALES = (("f16",), ("f8",), ("f16", "f8"), ("f16", "f8", "f4"))
QCIM_SOURCES = ("readout", "f16")
QUERY_PROPAGATIONS = ("previous", "first")
# channels of the key encoder's f16, f8 and f4 for each backbone (torchvision ResNets up to layer3)
BACKBONE_CHANNELS = {"resnet50": (1024, 512, 256), "resnet18": (256, 128, 64)}
# Named network sizes. "base" is the size of the released XMem and QMVOS networks. "small"
# (ResNet-18 key encoder, as Cutie-small, and narrower values, decoder and queries) trains in
# minutes on a laptop CPU; it is for learning and quick experiments, not for the paper's figures.
MODEL_SIZES = {
    "base": {},
    "small": {"backbone": "resnet18", "key_dim": 32, "value_dim": 128, "hidden_dim": 32,
              "decoder_dims": (128, 64, 64), "query_dim": 64},
}


@dataclass
class ModelConfig:
    """The network: XMem's dimensions (XMem Sec. 3) and QMVOS's switches (QMVOS Table 3).

    key_dim:    C^k, channels of keys and selection.
    value_dim:  C^v, channels of memory values.
    hidden_dim: C^h, channels of the sensory memory; 0 disables it (the "no sensory" variant).
    single_object: the value encoder sees RGB + mask only (4 input channels, XMem stage 0);
        otherwise RGB + mask + other objects' masks (5 channels).
    queries:    False = the XMem baseline; True = QMVOS object queries (SIM + QCIM + dynamic filters).
    sim_scales: the features the SIM summarises objects from (Table 3b): ("f16",), ("f8",),
        ("f16", "f8") (default), ("f16", "f8", "f4").
    sim_interaction: the SIM's multi-object interaction among queries (Table 3c).
    qcim_source: what the QCIM's queries attend to (Table 3d): "readout" (the memory readout of all
        objects, default) or "f16" (the backbone feature of the frame).
    query_propagation: "previous" rebuilds the queries from the previous frame's prediction
        (default); "first" keeps the first frame's queries (Table 3e).
    query_dim:  channels of the queries (256 as released); the dynamic filters take the dot product
        with the stride-4 decoder feature, so it equals decoder_dims[2] when queries are on.
    backbone:   the key encoder, "resnet50" (released) or "resnet18" (the "small" size).
    decoder_dims: channels of the decoder's g16, g8 and g4 (512, 256, 256 as released).
    qcim_identity: BEYOND THE PAPER (off by default; issue 26's remedy): a learnt identity code per
        object slot added to the query and to that object's serialised readout positions in the
        QCIM's cross-attention only (as DETR adds positional encodings to queries and keys; the
        values stay the readout), so a query can tell its own object's readout from the others'.
        Needs queries with qcim_source "readout"; off, it adds no weights and no config key.
    """

    key_dim: int = 64
    value_dim: int = 512
    hidden_dim: int = 64
    single_object: bool = False
    queries: bool = False
    sim_scales: tuple[str, ...] = ("f16", "f8")
    sim_interaction: bool = True
    qcim_source: str = "readout"
    query_propagation: str = "previous"
    query_dim: int = 256
    backbone: str = "resnet50"
    decoder_dims: tuple[int, int, int] = (512, 256, 256)
    qcim_identity: bool = False  # beyond the paper (see above)

    def __post_init__(self):
        for name in ("key_dim", "value_dim", "query_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ModelConfig.{name} must be positive, got {getattr(self, name)}")
        if self.hidden_dim < 0:
            raise ValueError(f"ModelConfig.hidden_dim must be >= 0 (0 = no sensory memory), got {self.hidden_dim}")
        self.sim_scales = tuple(self.sim_scales)
        if self.sim_scales not in SIM_SCALES:
            raise ValueError(f"ModelConfig.sim_scales must be one of {list(SIM_SCALES)}, got {self.sim_scales}")
        if self.qcim_source not in QCIM_SOURCES:
            raise ValueError(f"ModelConfig.qcim_source must be one of {QCIM_SOURCES}, got {self.qcim_source!r}")
        if self.query_propagation not in QUERY_PROPAGATIONS:
            raise ValueError(f"ModelConfig.query_propagation must be one of {QUERY_PROPAGATIONS}, "
                             f"got {self.query_propagation!r}")
        if self.query_dim % 32 or self.query_dim % 8:
            raise ValueError(f"ModelConfig.query_dim must be a multiple of 32 (GroupNorm) and 8 (heads), "
                             f"got {self.query_dim}")
        if self.backbone not in BACKBONE_CHANNELS:
            raise ValueError(f"ModelConfig.backbone must be one of {list(BACKBONE_CHANNELS)}, got {self.backbone!r}")
        self.decoder_dims = tuple(self.decoder_dims)
        if len(self.decoder_dims) != 3 or min(self.decoder_dims) <= 0 or any(d % 16 for d in self.decoder_dims):
            raise ValueError(f"ModelConfig.decoder_dims must be three positive multiples of 16 (g16, g8, g4), "
                             f"got {self.decoder_dims}")
        if self.qcim_identity and not (self.queries and self.qcim_source == "readout"):
            raise ValueError("ModelConfig.qcim_identity needs queries=True and qcim_source='readout' (it marks "
                             "each object's positions of the serialised readout)")
        if self.queries and self.query_dim != self.decoder_dims[2]:
            raise ValueError(f"ModelConfig.query_dim ({self.query_dim}) must equal decoder_dims[2] "
                             f"({self.decoder_dims[2]}): the queries filter the stride-4 decoder feature")

    @property
    def feature_dims(self) -> tuple[int, int, int]:
        """Channels of the key encoder's f16, f8, f4."""
        return BACKBONE_CHANNELS[self.backbone]

    def dimensions(self) -> dict:
        """The sizes that checkpoints fix (everything but the QMVOS switches); a QMVOS network
        built from them has queries as wide as the stride-4 decoder feature."""
        return {"key_dim": self.key_dim, "value_dim": self.value_dim, "hidden_dim": self.hidden_dim,
                "backbone": self.backbone, "decoder_dims": self.decoder_dims, "query_dim": self.decoder_dims[2]}

    @classmethod
    def of_size(cls, size: str = "base", **fields) -> "ModelConfig":
        """The config of a named size (MODEL_SIZES), with `fields` on top."""
        if size not in MODEL_SIZES:
            raise ValueError(f"unknown model size {size!r}; choose from {', '.join(MODEL_SIZES)}")
        return cls(**{**MODEL_SIZES[size], **fields})

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["sim_scales"] = list(self.sim_scales)
        values["decoder_dims"] = list(self.decoder_dims)
        if not self.qcim_identity:  # beyond the paper: absent when off, so configs and cache keys stay as they were
            del values["qcim_identity"]
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {unknown}; known fields are {sorted(known)}")
        return cls(**values)


@dataclass
class InferenceConfig:
    """Memory and inference settings (XMem Sec. 3.3-3.5; defaults of the official evaluation).

    top_k:        k of the top-k softmax in memory reading.
    mem_every:    r: a new working-memory frame every r frames (and on every frame with a mask).
    deep_update_every: the value-encoder ("deep") sensory update every k frames; -1 synchronises it
                  with the memory frames.
    enable_long_term: consolidate working memory into long-term memory (off = working memory only,
                  which grows without bound).
    max_mid_term_frames / min_mid_term_frames: T_max / T_min of working memory.
    num_prototypes: P, prototypes consolidated per compression.
    max_long_term_elements: LT_max, the long-term memory capacity (pruned by least usage).
    size:         resize the shorter side of each frame to this (-1 keeps the original size).
    """

    top_k: int = 30
    mem_every: int = 5
    deep_update_every: int = -1
    enable_long_term: bool = True
    max_mid_term_frames: int = 10
    min_mid_term_frames: int = 5
    num_prototypes: int = 128
    max_long_term_elements: int = 10_000
    size: int = 480

    def __post_init__(self):
        positive = ("top_k", "mem_every", "max_mid_term_frames", "min_mid_term_frames", "num_prototypes",
                    "max_long_term_elements")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"InferenceConfig.{name} must be positive, got {getattr(self, name)}")
        if self.deep_update_every == 0 or self.deep_update_every < -1:
            raise ValueError(f"InferenceConfig.deep_update_every must be -1 (synchronised) or positive, "
                             f"got {self.deep_update_every}")
        if self.min_mid_term_frames >= self.max_mid_term_frames:
            raise ValueError(f"InferenceConfig.min_mid_term_frames ({self.min_mid_term_frames}) must be below "
                             f"max_mid_term_frames ({self.max_mid_term_frames})")
        if self.num_prototypes >= self.max_long_term_elements:
            raise ValueError(f"InferenceConfig.num_prototypes ({self.num_prototypes}) must be below "
                             f"max_long_term_elements ({self.max_long_term_elements})")
        if self.size == 0 or self.size < -1:
            raise ValueError(f"InferenceConfig.size must be positive or -1 (keep), got {self.size}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TrainConfig:
    """A training run (XMem's recipe, kept by QMVOS; presets in qmvos_lab/train/presets.py).

    data: "generated" (drawn in memory), "davis16" (the 240p DAVIS-2016 train split, with pasted
        multi-object clips), or "davis17+youtube" (the paper's stage 3; needs the full data).
    model_size: the network size when starting from scratch or ImageNet (MODEL_SIZES: "base" is
        the released size, "small" a ResNet-18 network for CPU training); a checkpoint fixes its own.
    init: "scratch", "imagenet" (torchvision encoders; `resnet50`/`resnet18` files or a download),
        or the path / release name of an XMem or QMVOS checkpoint.
    lr_schedule: "step" (x `gamma` at each of `lr_steps`, fractions of `iterations`) or "cosine"
        (down to `min_lr` x lr at the end); `warmup`: the fraction of `iterations` with a linear
        warm-up first (train/schedule.py).
    start_warm / end_warm: fractions of `iterations` for the bootstrapped cross-entropy.
    crop_scale: the area fraction (low, high) of the frame each random crop covers before it is
        resized to crop_size (XMem: 0.36-1); it sets the zoom at which objects are seen.
    inference_size: the shorter side to which the trained network resizes generated frames when it
        segments them (validation, the zoo, the demo, the ablation runner, the notebooks): a recipe
        that trains on zoomed crops segments at the same zoom. -1 keeps their own 96 px. Stored in
        the checkpoints as `network.inference_size`.
    skip_scale: multiplies XMem's skip curriculum (max frame gap 5 -> 10 -> 15 -> 5).
    amp / channels_last: bf16 autocast (fp16 on GPUs without bf16) and the NHWC memory format; None
        (given as "auto") lets `train.fast_path.resolve_fast_path` time both on this machine and keep
        the faster. The CPU presets leave both to "auto"; a run's config.json holds the resolved values.
    """

    name: str = "run"
    ablation: str = "qmvos"
    model_size: str = "base"
    data: str = "generated"
    data_root: str = ""
    init: str = "scratch"
    resnet50: str = ""
    resnet18: str = ""
    iterations: int = 200
    batch_size: int = 4
    lr: float = 1e-4
    lr_schedule: str = "step"
    lr_steps: tuple[float, ...] = (0.8,)
    gamma: float = 0.1
    warmup: float = 0.0
    min_lr: float = 0.01
    weight_decay: float = 0.05
    grad_clip: float = 3.0
    # BatchNorm frozen as upstream when starting from trained weights; from scratch its statistics
    # must be learnt (frozen initial statistics are the identity, and deep activations explode)
    freeze_batchnorm: bool | None = None  # None: freeze unless init == "scratch"
    num_frames: int = 8
    num_ref_frames: int = 3
    crop_size: int = 384
    crop_scale: tuple[float, float] = (0.36, 1.0)  # data/clips.py's XMEM_CROP_SCALE (config imports no data code)
    inference_size: int = -1
    max_objects: int = 3
    skip_scale: float = 1.0
    start_warm: float = 0.2
    end_warm: float = 0.7
    deep_update_prob: float = 0.2
    samples_per_epoch: int = 2000
    workers: int = 2
    # None ("auto"): chosen by timing a few training steps on this machine (train/fast_path.py);
    # resolved to True/False before a run starts, and saved resolved
    amp: bool | None = False
    compile: bool = False
    channels_last: bool | None = False
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 100
    tensorboard: bool = False

    def __post_init__(self):
        self.lr_steps = tuple(self.lr_steps)
        self.crop_scale = tuple(self.crop_scale)
        for name in ("amp", "channels_last"):  # "auto" is None: measured on this machine (train/fast_path.py)
            value = getattr(self, name)
            if isinstance(value, str) and value.strip().lower() == "auto":
                setattr(self, name, None)
            elif value is not None and not isinstance(value, bool):
                raise ValueError(f"TrainConfig.{name} must be true, false or 'auto', got {value!r}")
        if self.iterations <= 0 or self.batch_size <= 0 or self.num_frames < 2:
            raise ValueError("TrainConfig needs iterations > 0, batch_size > 0 and num_frames >= 2")
        if len(self.crop_scale) != 2 or not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise ValueError(f"TrainConfig.crop_scale must be (low, high) with 0 < low <= high <= 1, got {self.crop_scale}")
        if self.skip_scale <= 0:
            raise ValueError(f"TrainConfig.skip_scale must be positive, got {self.skip_scale}")
        if self.inference_size != -1 and self.inference_size < 16:
            raise ValueError(f"TrainConfig.inference_size must be -1 (the frames' own size) or at least 16, "
                             f"got {self.inference_size}")
        if self.model_size not in MODEL_SIZES:
            raise ValueError(f"TrainConfig.model_size must be one of {list(MODEL_SIZES)}, got {self.model_size!r}")
        if self.lr_schedule not in ("step", "cosine"):
            raise ValueError(f"TrainConfig.lr_schedule must be 'step' or 'cosine', got {self.lr_schedule!r}")
        if not 0 <= self.warmup < 1 or not 0 <= self.min_lr <= 1:
            raise ValueError(f"TrainConfig needs 0 <= warmup < 1 and 0 <= min_lr <= 1 (fractions), "
                             f"got warmup={self.warmup}, min_lr={self.min_lr}")
        if not 0 <= self.start_warm <= self.end_warm <= 1:
            raise ValueError("TrainConfig needs 0 <= start_warm <= end_warm <= 1 (fractions of the iterations)")

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["lr_steps"] = list(self.lr_steps)
        values["crop_scale"] = list(self.crop_scale)
        return values
