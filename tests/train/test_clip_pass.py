"""The training pass: which memory frames each frame reads, and query propagation (Table 3e) in training."""

import torch

from qmvos_lab.config import ModelConfig
from qmvos_lab.model import QMVOS
from qmvos_lab.train.clip_pass import PassConfig, clip_pass


# adapter: network interface
def run_pass(net, batch, generator, num_ref_frames=3):
    """One training pass over `batch`; returns the per-frame outputs."""
    return clip_pass(net, batch["frames"], batch["masks"], batch["selector"], PassConfig(num_ref_frames, 0.2),
                     generator)


def small_qmvos(**switches):
    torch.manual_seed(0)
    net = QMVOS(ModelConfig.of_size("small", queries=True, **switches))
    torch.nn.init.ones_(net.decoder.QCIM.norm3.weight)  # fresh queries are zero: give them a scale
    return net.eval()


def clip(num_frames=4, batch=1, size=32):
    gen = torch.Generator().manual_seed(3)
    masks = torch.zeros(batch, num_frames, 2, size, size)
    for t in range(num_frames):  # two bands drifting down
        masks[:, t, 0, t:t + size // 3] = 1
        masks[:, t, 1, size // 2 + t:size // 2 + t + size // 4] = 1
    return {"frames": torch.randn(batch, num_frames, 3, size, size, generator=gen), "masks": masks,
            "selector": torch.ones(batch, 2)}


def test_frames_read_every_earlier_frame_then_frame_0_and_random_earlier_ones():
    net = small_qmvos()
    batch = clip(num_frames=7, batch=2)
    keys, read = net.encode_key(batch["frames"])[0], []
    original = net.read_memory
    net.read_memory = lambda query_key, selection, mem_key, *args, **kwargs: (
        read.append(mem_key.detach().clone()) or original(query_key, selection, mem_key, *args, **kwargs))
    with torch.no_grad():
        run_pass(net, batch, torch.Generator().manual_seed(0))
    assert [m.shape[2] for m in read] == [1, 2, 3, 3, 3, 3]  # t <= 3: all earlier frames; then 3
    for t, memory in enumerate(read, start=1):
        for b in range(2):
            frames = [next(i for i in range(t) if torch.equal(memory[b, :, k], keys[b, :, i]))
                      for k in range(memory.shape[2])]
            assert frames[0] == 0 and len(set(frames)) == len(frames) and max(frames) < t  # frame 0, distinct, earlier
            if t <= 3:
                assert frames == list(range(t))
    picks = [tuple(next(i for i in range(7) if torch.equal(m[0, :, k], keys[0, :, i])) for k in range(3))
             for m in read[3:]]
    assert len(set(picks)) > 1  # random, not always the same frames


def test_first_frame_propagation_keeps_frame_0_queries_in_training():
    batch = clip()
    seen = {}
    for propagation in ("first", "previous"):
        net = small_qmvos(query_propagation=propagation)
        queries = seen[propagation] = []
        net.decoder.QCIM.register_forward_pre_hook(lambda module, args: queries.append(args[0].detach().clone()))
        with torch.no_grad():
            run_pass(net, batch, torch.Generator().manual_seed(0))
        assert len(queries) == 3  # frames 1..3
    assert all(torch.equal(q, seen["first"][0]) for q in seen["first"])
    torch.testing.assert_close(seen["previous"][0], seen["first"][0])  # frame 1 reads frame 0's queries in both
    assert not torch.allclose(seen["previous"][2], seen["first"][2])  # later frames: rebuilt from the prediction
