"""What training learns is what inference segments: a network fitted from scratch on one generated
clip (the training pass) must segment the same frames nearly the same way through the inference
engine (memory manager, top-k readout, sensory memory), and not as background. (The NaN readouts of
upstream's top-k softmax for far-apart keys, which appear after longer training, are pinned by
tests/model/test_memory_read.py.)"""

import numpy as np
import pytest
import torch

from qmvos_lab.config import InferenceConfig
from qmvos_lab.data.frames import IMAGENET_MEAN, IMAGENET_STD
from qmvos_lab.data.synthetic import split_videos
from qmvos_lab.eval.metrics import jaccard
from qmvos_lab.inference import VideoSegmenter
from qmvos_lab.train.clip_pass import PassConfig, clip_pass
from qmvos_lab.train.presets import preset
from qmvos_lab.train.trainer import Trainer

NUM_FRAMES = 4


def clip_batch(video) -> dict:
    """The first frames of a generated video as a training batch of one clip."""
    frames = torch.from_numpy(video.frames[:NUM_FRAMES]).permute(0, 3, 1, 2).float() / 255  # T x 3 x H x W
    frames = (frames - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    labels = torch.from_numpy(video.labels[:NUM_FRAMES]).long()  # T x H x W
    num_objects = int(labels.max())
    masks = torch.stack([(labels == i).float() for i in range(1, num_objects + 1)], 1)  # T x N x H x W
    return {"frames": frames[None], "masks": masks[None], "labels": labels[None],
            "selector": torch.ones(1, num_objects), "num_objects": torch.tensor([num_objects])}


@pytest.mark.parametrize("ablation", ["xmem", "qmvos"])
def test_a_network_fitted_by_training_segments_the_same_at_inference(tmp_path, ablation):
    torch.manual_seed(0)
    video = next(iter(split_videos("synthetic-val", 1)))
    batch = clip_batch(video)
    # a constant lr of 1e-3 (no warm-up) fits one clip in 40 steps, whatever the preset's schedule
    config = preset("cpu-tiny", ablation=ablation, iterations=1000, workers=0, start_warm=1.0, end_warm=1.0,
                    lr=1e-3, lr_schedule="step", lr_steps=(0.8,), warmup=0.0,
                    amp=False, channels_last=False)  # fp32: the same arithmetic on every CPU, no timing
    trainer = Trainer(config, tmp_path / "run", progress=False)
    losses = [trainer.step(batch)["loss"] for _ in range(40)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])  # it fits the clip

    network = trainer.network.eval()
    with torch.no_grad():
        trained = clip_pass(network, batch["frames"], batch["masks"], batch["selector"], PassConfig(),
                            torch.Generator().manual_seed(0))
    segmenter = VideoSegmenter(network, InferenceConfig(size=-1, mem_every=1))
    results = [segmenter.step(video.frames[t], video.labels[0] if t == 0 else None) for t in range(NUM_FRAMES)]
    for t in range(1, NUM_FRAMES):
        assert torch.isfinite(results[t].prob).all()
        training_labels = trained["logits"][t - 1][0].argmax(0).numpy()  # H x W
        for object_id in range(1, int(video.labels[0].max()) + 1):
            truth = video.labels[t] == object_id
            inferred = results[t].labels == object_id
            assert float(jaccard(truth, inferred)) > 0.5, (t, object_id)  # not background
            # close, not equal: inference reads the top 30 memory entries and, on memory frames, takes
            # the deep sensory update instead of the decoder's (both as upstream)
            assert float(jaccard(training_labels == object_id, inferred)) > 0.75, (t, object_id)


def test_generated_videos_are_segmented_at_the_size_the_recipe_trained_for():
    from qmvos_lab.eval.videos import generated_config

    config = preset("cpu-tiny")
    assert config.inference_size == 192  # 2x the generated 96 px: the crops zoom objects 1.75-2.3x
    network = torch.nn.Module()
    assert generated_config(network).size == -1  # no recipe: the frames' own size
    network.inference_size = config.inference_size
    assert generated_config(network) == InferenceConfig(size=192)
    assert generated_config(network, mem_every=2, size=96) == InferenceConfig(size=96, mem_every=2)
