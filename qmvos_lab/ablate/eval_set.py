"""What an ablation run is scored on (`EvalSet`): a held-out generated split or a DAVIS folder's val
split, its size and knobs, and the inference settings; its `key` names the run's stored result."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..config import InferenceConfig
from ..errors import UserError
from ..eval.videos import generated_config

EVAL_VERSION = 1  # bump when the evaluation (metrics, protocol) changes what it reports
DEFAULT_EVAL_SET = "synthetic-hard"  # held out: similar objects, occlusions (never trained on)
TRAINING_SPLITS = ("synthetic-train",)
DAVIS_PREFIXES = ("davis2017:", "davis2016:")  # eval sets read from a DAVIS folder: "davis2017:ROOT"


@dataclass(frozen=True)
class EvalSet:
    """What a run is scored on: a generated split (`name` in SPLITS; `overrides` are SyntheticConfig
    knobs such as length) or "davis2017:ROOT" / "davis2016:ROOT" (the val split of a DAVIS folder)."""

    name: str = DEFAULT_EVAL_SET
    videos: int | None = None  # None: the whole split
    overrides: tuple = ()
    inference: tuple = ()  # InferenceConfig fields (sorted pairs); size=-1 keeps the frame size

    def inference_config(self, network=None) -> InferenceConfig:
        """The given InferenceConfig fields; the size, unless given, is the network's recipe's for a
        generated split (`eval.videos.generated_config`: `network.inference_size`, which the run's
        cache key already fixes) and the frames' own for DAVIS."""
        fields = dict(self.inference)
        return InferenceConfig(**{"size": -1, **fields}) if self.is_davis else generated_config(network, **fields)

    @property
    def is_davis(self) -> bool:
        """A DAVIS folder's val split (real frames), not a generated split."""
        return self.name.startswith(DAVIS_PREFIXES)

    def key(self) -> str:
        """12 hex digits naming this evaluation in a run's folder (`eval-<key>.json`)."""
        blob = json.dumps({"set": self.name, "videos": self.videos, "overrides": list(self.overrides),
                           "inference": self.inference_config().to_dict(), "version": EVAL_VERSION},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def eval_set_from(name: str = DEFAULT_EVAL_SET, videos: int | None = None, overrides: Mapping | None = None,
                  inference: Mapping | None = None) -> EvalSet:
    """An EvalSet from a split name or "davis2017:ROOT", with one-line errors for the training split,
    unknown names, a non-positive size and InferenceConfig fields it refuses."""
    from ..data.synthetic import SPLITS

    if name in TRAINING_SPLITS:
        raise UserError(f"eval set {name!r} is the training split; evaluate on a held-out one "
                        f"({', '.join(s for s in SPLITS if s not in TRAINING_SPLITS)})")
    if name not in SPLITS and not name.startswith(DAVIS_PREFIXES):
        held_out = ", ".join(s for s in SPLITS if s not in TRAINING_SPLITS)
        raise UserError(f"unknown eval set {name!r}; choose from {held_out} or davis2017:ROOT / davis2016:ROOT "
                        "(a DAVIS folder)")
    if videos is not None and videos <= 0:
        raise UserError(f"eval videos must be positive, got {videos}")
    try:
        inference_pairs = tuple(sorted((inference or {}).items()))
        InferenceConfig(**{"size": -1, **dict(inference_pairs)})
    except (TypeError, ValueError) as error:
        raise UserError(f"inference settings: {error}") from None
    return EvalSet(name, videos, tuple(sorted((overrides or {}).items())), inference_pairs)


def check_eval_set(eval_set: EvalSet) -> None:
    """What would otherwise fail only after every run has trained: a DAVIS root without the val
    sequences, generated-set knobs that the generator refuses."""
    if eval_set.is_davis:
        from ..data.readers import read_davis

        year, _, root = eval_set.name.partition(":")
        if not Path(root).expanduser().is_dir():
            raise UserError(f"eval set {eval_set.name}: {root or '(empty)'} is not a folder; give the DAVIS root "
                            "(the folder holding JPEGImages, Annotations and ImageSets)")
        sequences = read_davis(root, split="val", year=int(year[-4:]))  # lists files only; one-line errors
        if not sequences:
            raise UserError(f"eval set {eval_set.name}: no val sequences in {root}")
        return
    from ..data.synthetic import SPLITS

    try:
        dataclasses.replace(SPLITS[eval_set.name].config, **dict(eval_set.overrides))
    except (TypeError, ValueError) as error:
        raise UserError(f"eval set {eval_set.name}: {error}") from None


@functools.lru_cache(maxsize=4)
def eval_videos(eval_set: EvalSet) -> list:
    """The videos of an eval set (`data.video.Video`: frames, labels, given_masks), cached in memory."""
    if eval_set.is_davis:
        from ..data.video import davis_videos

        year, _, root = eval_set.name.partition(":")
        return davis_videos(root, int(year[-4:]), eval_set.videos)
    from ..data.synthetic import split_videos

    try:
        return list(split_videos(eval_set.name, eval_set.videos, **dict(eval_set.overrides)))
    except (TypeError, ValueError) as error:
        raise UserError(f"eval set {eval_set.name}: {error}") from None
