"""J, F and their statistics on small hand-made masks whose values are derived by hand.

Agreement with the official davis2017-evaluation code on varied generated cases (every value
equal, max difference 0) is checked by benchmarks/parity_davis_evaluation.py against a fetched
copy of the official tool.
"""

import math

import numpy as np
import pytest

from qmvos_lab.eval.metrics import (boundary_map, boundary_radius, decay_bin_edges, dilate_disk, f_measure,
                                    f_measure_frames, jaccard, statistics)


def square(size, top, left, height, width):
    mask = np.zeros(size, bool)
    mask[top:top + height, left:left + width] = True
    return mask


def test_jaccard_by_hand():
    gt = square((6, 6), 1, 1, 2, 2)  # 4 pixels
    pred = square((6, 6), 1, 1, 2, 3)  # 6 pixels, containing gt
    assert jaccard(gt, pred) == pytest.approx(4 / 6)
    assert jaccard(gt, ~gt) == 0.0
    assert jaccard(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0  # both empty
    frames = jaccard(np.stack([gt, gt, np.zeros_like(gt)]), np.stack([pred, gt, np.zeros_like(gt)]))
    np.testing.assert_allclose(frames, [4 / 6, 1.0, 1.0])


def test_boundary_of_a_square_by_hand():
    seg = square((4, 4), 1, 1, 2, 2)
    expected = np.array([[1, 1, 1, 0],
                         [1, 0, 1, 0],
                         [1, 1, 1, 0],
                         [0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(boundary_map(seg), expected)


def test_boundary_border_rules():
    # a full mask has no boundary: the borders never compare with the outside
    assert not boundary_map(np.ones((5, 6), bool)).any()
    # last row only: the last row compares right only, so its boundary is the row above it
    seg = np.zeros((4, 5), bool)
    seg[-1] = True
    expected = np.zeros_like(seg)
    expected[-2] = True
    np.testing.assert_array_equal(boundary_map(seg), expected)
    # last column only: the last column compares downwards only, so the boundary is the column left of it
    seg = np.zeros((4, 5), bool)
    seg[:, -1] = True
    expected = np.zeros_like(seg)
    expected[:, -2] = True
    np.testing.assert_array_equal(boundary_map(seg), expected)
    # the bottom-right pixel alone: only its upper-left neighbours see it; it never is a boundary itself
    seg = np.zeros((3, 3), bool)
    seg[-1, -1] = True
    np.testing.assert_array_equal(boundary_map(seg), [[0, 0, 0], [0, 1, 1], [0, 1, 0]])


def test_boundary_radius_is_ceil_of_0_008_diagonal():
    assert boundary_radius(480, 854) == 8  # 0.008 * 979.6 = 7.84
    assert boundary_radius(240, 427) == 4  # 3.92
    assert boundary_radius(10, 10) == 1
    assert boundary_radius(10, 10, threshold=3) == 3


def test_disk_dilation_matches_the_definition():
    rng = np.random.default_rng(0)
    for radius in (1, 2, 4, 8):
        boundary = rng.random((23, 31)) < 0.02
        expected = np.zeros_like(boundary)
        for y, x in zip(*np.nonzero(boundary)):
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    if dy * dy + dx * dx <= radius * radius and 0 <= y + dy < 23 and 0 <= x + dx < 31:
                        expected[y + dy, x + dx] = True
        np.testing.assert_array_equal(dilate_disk(boundary, radius), expected)


def test_f_measure_by_hand():
    # a one-pixel object at (4, 4) has the 2x2 boundary {3,4} x {3,4}; radius is 1 on a 10x10 image
    gt = square((10, 10), 4, 4, 1, 1)
    two_right = square((10, 10), 4, 6, 1, 1)  # boundary {3,4} x {5,6}: column 5 is within 1 of column 4
    assert f_measure(gt, two_right) == pytest.approx(0.5)  # P = R = 2/4
    three_right = square((10, 10), 4, 7, 1, 1)  # boundary {3,4} x {6,7}: nothing within 1
    assert f_measure(gt, three_right) == 0.0
    assert f_measure(gt, gt) == 1.0
    empty = np.zeros((10, 10), bool)
    assert f_measure(empty, empty) == 1.0  # both empty
    assert f_measure(gt, empty) == 0.0 and f_measure(empty, gt) == 0.0  # one empty
    np.testing.assert_allclose(f_measure_frames(np.stack([gt, gt]), np.stack([two_right, empty])), [0.5, 0.0])


def test_statistics_by_hand():
    mean, recall, decay = statistics(np.array([1.0, 1.0, 0.0, 0.0, 0.6]))
    assert mean == pytest.approx(0.52)
    assert recall == pytest.approx(0.6)
    assert decay == pytest.approx(1.0 - 0.3)  # bins {0,1} and {3,4}, inclusive at both ends
    assert statistics(np.array([0.5, 0.5]))[1] == 0.0  # recall is strict: > 0.5
    assert statistics(np.array([0.7]))[2] == 0.0  # one frame: all bins are that frame
    assert all(math.isnan(v) for v in statistics(np.array([])))


def test_decay_edges_follow_the_official_formula_and_do_not_overflow():
    np.testing.assert_array_equal(decay_bin_edges(5), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(decay_bin_edges(10), [0, 2, 5, 7, 9])
    # beyond 255 frames the official uint8 edges wrap; these are the intended ones
    np.testing.assert_array_equal(decay_bin_edges(300), [0, 75, 150, 224, 299])
    values = np.linspace(1, 0, 300)
    assert statistics(values)[2] == pytest.approx(values[:76].mean() - values[224:].mean())


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        jaccard(np.zeros((3, 3)), np.zeros((3, 4)))
