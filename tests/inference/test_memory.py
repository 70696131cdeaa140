"""The key-value store and XMem's memory manager: groups, usage, consolidation, bounded memory.

Agreement of whole-video inference with the official XMem (max |dprob| below 1e-6 in fp32, with
consolidation and an object entering mid-video) is checked by tests/test_parity_goldens.py against
stored official outputs, and by benchmarks/parity_xmem_inference.py against a fetched copy of the
official code.
"""

import pytest
import torch

from qmvos_lab.config import InferenceConfig
from qmvos_lab.inference.memory_manager import MemoryManager
from qmvos_lab.inference.memory_store import KeyValueStore
from qmvos_lab.model.memory_read import get_similarity, readout, softmax_affinity


def element(n, ck=4, cv=3, objects=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(1, ck, n, generator=gen), torch.randn(objects, cv, n, generator=gen),
            1 + torch.rand(1, 1, n, generator=gen), torch.rand(1, ck, n, generator=gen))


def test_objects_entering_later_form_a_group_with_values_for_later_elements_only():
    store = KeyValueStore(count_usage=True)
    key, value, shrinkage, selection = element(5, objects=1)
    store.add(key, value, shrinkage, selection, objects=[1])
    key, value, shrinkage, selection = element(5, objects=3, seed=1)
    store.add(key, value, shrinkage, selection, objects=[1, 2, 3])
    assert store.size == 10 and store.groups == [[0], [1, 2]]
    assert store.value_size(0) == 10 and store.value_size(1) == 5
    torch.testing.assert_close(store.values[1], value[[1, 2]])


def test_usage_is_normalised_by_age_and_sieving_drops_a_range():
    store = KeyValueStore(count_usage=True)
    key, value, shrinkage, selection = element(6)
    store.add(key, value, shrinkage, selection, objects=[1, 2])
    store.update_usage(torch.arange(6.0))
    store.update_usage(torch.arange(6.0))
    torch.testing.assert_close(store.usage().flatten(), 2 * torch.arange(6.0) / (2 + 1e-7))
    store.sieve_by_range(1, -2, min_size=0)
    torch.testing.assert_close(store.key, key[:, :, [0, 4, 5]])
    torch.testing.assert_close(store.values[0], value[:, :, [0, 4, 5]])


def test_pruning_keeps_the_most_used_elements_in_every_group():
    store = KeyValueStore(count_usage=True)
    key, value, shrinkage, _ = element(6, objects=1)
    store.add(key, [value], shrinkage, None)
    late = torch.randn(1, 3, 3)
    store.add(torch.randn(1, 4, 3), [value[:, :, :3], late], torch.ones(1, 1, 3), None)  # group 1: last 3 only
    store.update_usage(torch.tensor([5.0, 0, 6, 7, 8, 9, 1, 10, 11]))
    store.remove_obsolete(7)
    assert store.size == 7
    assert store.values[0].shape[-1] == 7 and store.values[1].shape[-1] == 2  # group 1 lost its least-used one
    torch.testing.assert_close(store.values[1], late[:, :, [1, 2]])


def make_manager(**overrides):
    config = InferenceConfig(**{"top_k": 5, "max_mid_term_frames": 4, "min_mid_term_frames": 2,
                                "num_prototypes": 6, "max_long_term_elements": 20, **overrides})
    return MemoryManager(config)


def add_frame(manager, seed, objects=(1, 2), size=(3, 4)):
    gen = torch.Generator().manual_seed(seed)
    key = torch.randn(1, 4, *size, generator=gen)
    manager.add_memory(key, 1 + torch.rand(1, 1, *size, generator=gen),
                       torch.randn(1, len(objects), 3, *size, generator=gen), list(objects),
                       selection=torch.rand(1, 4, *size, generator=gen))
    return key


def test_readout_of_a_single_frame_is_the_top_k_readout():
    manager = make_manager(enable_long_term=False)
    gen = torch.Generator().manual_seed(3)
    key, shrinkage = torch.randn(1, 4, 3, 4, generator=gen), 1 + torch.rand(1, 1, 3, 4, generator=gen)
    value = torch.randn(1, 2, 3, 3, 4, generator=gen)
    manager.add_memory(key, shrinkage, value, [1, 2])
    query, selection = torch.randn(1, 4, 3, 4, generator=gen), torch.rand(1, 4, 3, 4, generator=gen)
    affinity = softmax_affinity(get_similarity(key, shrinkage, query, selection), top_k=5)
    expected = torch.stack([readout(affinity, value[:, i]) for i in range(2)], 1).view(2, 3, 3, 4)
    torch.testing.assert_close(manager.match_memory(query, selection), expected)


def test_consolidation_fires_at_t_max_and_memory_stays_bounded():
    manager = make_manager()
    area = 12
    for t in range(40):
        add_frame(manager, t)
        manager.match_memory(torch.randn(1, 4, 3, 4), torch.rand(1, 4, 3, 4))
        assert manager.work_mem.size < 4 * area  # compressed as soon as it reaches T_max frames
        assert manager.long_mem.size <= 20
        if t == 3:  # first compression: T_max = 4 frames -> first frame + T_min - 1 = 1 newest frame
            assert manager.work_mem.size == 2 * area and manager.long_mem.size == 6
    assert manager.long_mem.engaged() and manager.long_mem.size >= 14
    readout_ = manager.match_memory(torch.randn(1, 4, 3, 4), torch.rand(1, 4, 3, 4))
    assert readout_.shape == (2, 3, 3, 4) and torch.isfinite(readout_).all()


def test_prototypes_are_capped_by_the_number_of_candidates():
    manager = make_manager(num_prototypes=19, max_long_term_elements=100)
    for t in range(4):
        add_frame(manager, t, size=(1, 2))  # 2 elements a frame: only 4 candidates
    assert manager.long_mem.size == 4


def test_late_objects_and_deletion_keep_groups_aligned():
    manager = make_manager(max_long_term_elements=200)
    add_frame(manager, 0, objects=(1,))
    for t in range(1, 12):
        add_frame(manager, t, objects=(1, 2, 3))
    readout_ = manager.match_memory(torch.randn(1, 4, 3, 4), torch.rand(1, 4, 3, 4))
    assert readout_.shape[0] == 3 and manager.long_mem.num_groups == 2
    manager.delete_objects([2])
    assert manager.work_mem.groups == [[0], [1]]
    assert manager.match_memory(torch.randn(1, 4, 3, 4), torch.rand(1, 4, 3, 4)).shape[0] == 2
    manager.delete_objects([1])
    assert manager.work_mem.groups == [[0]] and manager.long_mem.num_groups == 1
    assert manager.match_memory(torch.randn(1, 4, 3, 4), torch.rand(1, 4, 3, 4)).shape[0] == 1


def test_invalid_inference_settings_are_refused():
    for bad in ({"min_mid_term_frames": 10}, {"top_k": 0}, {"deep_update_every": 0}, {"size": 0},
                {"num_prototypes": 20000}):
        with pytest.raises(ValueError):
            InferenceConfig(**bad)


def test_pruning_to_exactly_the_current_size_keeps_everything():
    """Long-term memory that holds exactly LT_max - P elements is at capacity but has nothing to prune
    (topk with k = 0 made the official code, and ours, fail)."""
    store = KeyValueStore(count_usage=True)
    store.add(torch.randn(1, 4, 6), [torch.randn(1, 3, 6)], torch.ones(1, 1, 6), None, None)
    store.remove_obsolete(6)
    assert store.size == 6 and store.values[0].shape[-1] == 6


# ---------------------------------------------------------------------------------- consolidation
def consolidating_manager(**overrides):
    """T_max 4, T_min 2, P 3, three elements a frame (1 x 3 maps)."""
    config = InferenceConfig(**{"top_k": 5, "max_mid_term_frames": 4, "min_mid_term_frames": 2, "num_prototypes": 3,
                                "max_long_term_elements": 100, **overrides})
    return MemoryManager(config)


def frame_tensors(seed, objects=2):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(1, 4, 1, 3, generator=gen), 1 + torch.rand(1, 1, 1, 3, generator=gen),
            torch.randn(1, objects, 3, 1, 3, generator=gen), torch.rand(1, 4, 1, 3, generator=gen))


def explicit_affinity(key, shrinkage, query, selection):
    """softmax_i of -s_i sum_c e_cj (k_ci - q_cj)^2 / sqrt(C) (XMem Eq. 3), over the memory axis i."""
    diff = key[0][:, :, None] - query[0][:, None, :]  # C x M x P
    similarity = -shrinkage[0, 0][:, None] * (selection[0][:, None, :] * diff ** 2).sum(0) / 2.0  # M x P
    return torch.softmax(similarity, dim=0)


def test_consolidation_keeps_first_and_newest_frames_and_makes_usage_ranked_potentiated_prototypes():
    manager = consolidating_manager()
    frames = [frame_tensors(t) for t in range(4)]
    for key, shrinkage, value, selection in frames[:3]:
        manager.add_memory(key, shrinkage, value, [1, 2], selection=selection)
    # usage of the 9 elements so far: frame 0 is used most but is never a candidate; among the
    # candidates (frames 1-2) the ranking by usage / age (1, .5, 4, 3, 2, .5) differs from the
    # ranking by usage alone (6, 1, 4, 3, 2, 5)
    manager.work_mem.use_count = torch.tensor([[[100.0, 100, 100, 6, 1, 4, 3, 2, 5]]])
    manager.work_mem.life_count = torch.tensor([[[1.0, 1, 1, 6, 2, 1, 1, 1, 10]]])
    key, shrinkage, value, selection = frames[3]
    manager.add_memory(key, shrinkage, value, [1, 2], selection=selection)  # T_max frames: consolidate

    flat = [[x.flatten(start_dim=2) for x in (k, s, v[0], e)] for k, s, v, e in frames]  # per frame
    # working memory: the first frame and the newest T_min - 1 = 1 frame
    torch.testing.assert_close(manager.work_mem.key, torch.cat([flat[0][0], flat[3][0]], -1), rtol=0, atol=0)
    torch.testing.assert_close(manager.work_mem.values[0], torch.cat([flat[0][2], flat[3][2]], -1), rtol=0, atol=0)
    torch.testing.assert_close(manager.work_mem.shrinkage, torch.cat([flat[0][1], flat[3][1]], -1), rtol=0, atol=0)
    # prototypes: the top-3 candidates by age-normalised usage, most used first
    cand_key, cand_shrinkage, cand_value, cand_selection = (torch.cat([flat[1][i], flat[2][i]], -1) for i in range(4))
    picked = [2, 3, 4]
    torch.testing.assert_close(manager.long_mem.key, cand_key[:, :, picked], rtol=0, atol=0)
    # potentiation: values and shrinkage are the affinity-weighted averages of all candidates
    affinity = explicit_affinity(cand_key, cand_shrinkage, cand_key[:, :, picked], cand_selection[:, :, picked])
    torch.testing.assert_close(manager.long_mem.values[0], cand_value @ affinity)
    torch.testing.assert_close(manager.long_mem.shrinkage, cand_shrinkage @ affinity)
    assert manager.long_mem.selection is None  # long-term memory is never consolidated again


def test_pruning_drops_the_least_used_long_term_elements():
    manager = consolidating_manager(max_long_term_elements=7)  # capacity before a consolidation: 7 - 3 = 4
    t = 0
    for _ in range(7):  # consolidations at frames 3 and 5: 6 long-term elements; the next one at frame 7
        key, shrinkage, value, selection = frame_tensors(t)
        manager.add_memory(key, shrinkage, value, [1, 2], selection=selection)
        t += 1
    assert manager.long_mem.size == 6
    before = manager.long_mem.key.clone(), manager.long_mem.values[0].clone()
    # usage / age (3, .5, 2, 1, 4, .25): the two least used are elements 1 and 5 (not 3 and 5 by raw usage)
    manager.long_mem.use_count = torch.tensor([[[3.0, 2, 2, 1, 4, 1]]])
    manager.long_mem.life_count = torch.tensor([[[1.0, 4, 1, 1, 1, 4]]])
    key, shrinkage, value, selection = frame_tensors(t)
    manager.add_memory(key, shrinkage, value, [1, 2], selection=selection)  # prune to 4, then add 3 prototypes
    kept = [0, 2, 3, 4]
    assert manager.long_mem.size == 7
    torch.testing.assert_close(manager.long_mem.key[:, :, :4], before[0][:, :, kept], rtol=0, atol=0)
    torch.testing.assert_close(manager.long_mem.values[0][:, :, :4], before[1][:, :, kept], rtol=0, atol=0)


def test_a_group_too_young_to_consolidate_is_skipped():
    for enters in (1, 2):  # object 2's values cover 3 or 2 frames at the consolidation: not more than T_min + 1
        manager = consolidating_manager()
        for t in range(4):
            key, shrinkage, value, selection = frame_tensors(t, objects=1 if t < enters else 2)
            manager.add_memory(key, shrinkage, value, [1] if t < enters else [1, 2], selection=selection)
            if t == 2:  # the candidates the late group has values for (frame 2) are the most used
                manager.work_mem.use_count = torch.tensor([[[0.0, 0, 0, 1, 1, 1, 5, 6, 7]]])
                manager.work_mem.life_count = torch.ones(1, 1, 9)
                young = manager.work_mem.values[1].clone()
        assert manager.long_mem.size == 3 and manager.long_mem.num_groups == 1  # prototypes for object 1 only
        assert manager.work_mem.size == 6 and manager.work_mem.values[0].shape[-1] == 6
        if enters == 2:  # values of 2 frames are left as they were
            torch.testing.assert_close(manager.work_mem.values[1][:, :, :3], young, rtol=0, atol=0)
    # an older group is consolidated: object 2 entering on frame 1 of 5 (T_max 5) covers 4 > T_min + 1 frames
    manager = consolidating_manager(max_mid_term_frames=5)
    for t in range(5):
        key, shrinkage, value, selection = frame_tensors(t, objects=1 if t < 1 else 2)
        manager.add_memory(key, shrinkage, value, [1] if t < 1 else [1, 2], selection=selection)
    assert manager.long_mem.num_groups == 2
