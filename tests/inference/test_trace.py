"""The per-frame trace: what it records agrees with the computation it records."""

import numpy as np
import pytest
import torch

from conftest import with_random_heads
from qmvos_lab.config import InferenceConfig, ModelConfig
from qmvos_lab.data.synthetic import SyntheticConfig, generate_video
from qmvos_lab.inference import VideoSegmenter
from qmvos_lab.model import build_network

CONFIG = InferenceConfig(size=-1, mem_every=2, max_mid_term_frames=4, min_mid_term_frames=2, num_prototypes=8,
                         max_long_term_elements=200)


@pytest.fixture(scope="module")
def video():
    return generate_video(SyntheticConfig(num_objects=2, length=30, height=48, width=64), seed=7, name="trace")


@pytest.fixture(scope="module", params=["xmem", "qmvos"])
def traced(request, video):
    torch.manual_seed(0)
    net = with_random_heads(build_network(ModelConfig.of_size("small", queries=request.param == "qmvos"))).eval()
    segmenter = VideoSegmenter(net, CONFIG, trace=True)
    given = video.given_masks()
    results = []
    for t, frame in enumerate(video.frames):
        results.append(segmenter.step(frame, given.get(t), end=t == len(video.frames) - 1))
        if t == 13:  # a non-memory frame: the memory that frame 13 read is still the store's
            assert not results[-1].trace.events["memory_frame"]
            memory = segmenter.core.memory
            memory_at_13 = ([v.clone() for v in memory.work_mem.values], [v.clone() for v in memory.long_mem.values])
    return request.param, results, memory_at_13


def test_every_frame_has_a_trace_and_tracing_changes_no_prediction(traced, video):
    kind, results, _ = traced
    assert [r.trace.index for r in results] == list(range(len(video.frames)))
    torch.manual_seed(0)
    net = with_random_heads(build_network(ModelConfig.of_size("small", queries=kind == "qmvos"))).eval()
    plain = VideoSegmenter(net, CONFIG)
    given = video.given_masks()
    for t, frame in enumerate(video.frames):
        result = plain.step(frame, given.get(t), end=t == len(video.frames) - 1)
        assert result.trace is None
        # the traced run computes the QCIM weights explicitly, which rounds differently from the fused path
        torch.testing.assert_close(result.prob, results[t].prob, rtol=1e-3, atol=1e-3)


def test_affinity_columns_sum_to_one_and_give_the_readout(traced):
    kind, results, (work_values, long_values) = traced
    trace = results[13].trace
    (group,) = trace.affinity  # one object group: both objects were given on frame 0
    torch.testing.assert_close(group.weights.sum(1), torch.ones(group.weights.shape[0]))
    assert group.weights.shape[1] == CONFIG.top_k or group.weights.shape[1] == group.long_term + group.working
    assert group.long_term > 0  # consolidation has happened by frame 13
    # readout = values @ affinity, over [long-term, working] elements
    values = torch.cat([long_values[0], work_values[0]], -1)  # N x Cv x M
    dense = group.dense()  # P x M
    height, width = trace.grid
    flat = trace.pixels[:, 0] * width + trace.pixels[:, 1]
    expected = torch.einsum("ncm,pm->ncp", values.float(), dense)  # N x Cv x P
    readout = trace.readout[0].flatten(2)[:, :, flat]  # N x Cv x P
    torch.testing.assert_close(readout, expected, rtol=1e-4, atol=1e-4)


def test_memory_sizes_and_consolidation_follow_the_config(traced):
    _, results, _ = traced
    events = [r.trace.events for r in results]
    memory_frames = [t for t, e in enumerate(events) if e["memory_frame"]]
    assert memory_frames == list(range(0, 29, 2))  # every mem_every=2 frames; the last frame stores nothing
    # T_max = 4 memory frames: consolidation on the 4th memory frame (frame 6), then every
    # T_max - T_min = 2 memory frames (frames 10, 14, ...)
    consolidations = [t for t, e in enumerate(events) if e["consolidation"]]
    assert consolidations == list(range(6, 29, 4))
    area = results[0].trace.grid[0] * results[0].trace.grid[1]
    for r in results:
        assert r.trace.working_size == len(r.trace.working_frames) * area
        assert len(r.trace.working_frames) <= CONFIG.max_mid_term_frames
    after = results[6].trace
    assert after.working_frames == [0, 6] and after.long_term_size > 0  # the first and the newest T_min - 1
    assert events[0]["objects_added"] == [1, 2] and all(not e["objects_added"] for e in events[1:])
    assert not events[0]["segmented"] and all(e["segmented"] for e in events[1:])


def test_qmvos_trace_has_queries_and_attention_rows_that_sum_to_one(traced):
    kind, results, _ = traced
    trace = results[5].trace
    if kind == "xmem":
        assert trace.queries_sim is None and trace.qcim_attention is None and trace.sim_attention is None
        return
    num_objects = 2
    assert trace.queries_sim.shape == trace.queries_qcim.shape == (1, num_objects, 64)
    cross = trace.qcim_attention["cross"]  # 1 x N x heads x N_obj x h x w
    assert cross.shape[:4] == (1, num_objects, 8, num_objects) and cross.shape[-2:] == trace.grid
    torch.testing.assert_close(cross.sum((-3, -2, -1)), torch.ones(1, num_objects, 8))
    torch.testing.assert_close(trace.qcim_attention["self"].sum(-1), torch.ones(1, num_objects, 8))
    torch.testing.assert_close(trace.sim_attention.sum(-1), torch.ones(1, 8, num_objects))
    # the queries of frame t are those the SIM made on frame t - 1
    previous = results[4].trace
    assert not torch.equal(trace.queries_sim, previous.queries_sim)
    assert trace.hidden_before.shape == trace.hidden_after.shape
    torch.testing.assert_close(trace.hidden_before, previous.hidden_after)


def test_trace_pixels_are_a_subgrid_when_the_grid_is_large():
    from qmvos_lab.inference.trace import grid_pixels

    assert grid_pixels(3, 4, 100).shape == (12, 2)
    sub = grid_pixels(30, 54, 400)
    assert sub.shape[0] <= 400 and np.all(sub.numpy() >= 0)
