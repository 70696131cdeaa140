"""The DAVIS semi-supervised protocol over folders, the CSV outputs, YouTube-VOS packaging, the CLI."""

import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from qmvos_lab.data.masks import write_label_map
from qmvos_lab.errors import UserError
from qmvos_lab.eval import evaluate_folders, package_youtube_submission, write_results
from qmvos_lab.eval.davis import GLOBAL_COLUMNS


def write_sequence(root, name, frames):
    for t, labels in enumerate(frames):
        write_label_map(root / name / f"{t:05d}.png", np.asarray(labels, np.uint8))


def blank(value=0, shape=(8, 8)):
    return np.full(shape, value, np.uint8)


def two_objects():
    frame = blank()
    frame[1:3, 1:3] = 1
    frame[5:7, 5:7] = 2
    return frame


@pytest.fixture
def folders(tmp_path):
    return tmp_path / "gt", tmp_path / "res"


def test_perfect_prediction_scores_one_and_first_last_frames_are_ignored(folders):
    gt_root, res_root = folders
    write_sequence(gt_root, "a", [two_objects()] * 4)
    write_sequence(res_root, "a", [blank(), two_objects(), two_objects(), blank()])  # first/last wrong
    result = evaluate_folders(gt_root, res_root)
    assert list(result.global_results.columns) == GLOBAL_COLUMNS
    assert result.jf_mean == 1.0
    assert list(result.per_sequence["Sequence"]) == ["a_1", "a_2"]
    assert list(result.per_frame["Frame"].unique()) == ["00001", "00002"]


def test_void_in_ground_truth_counts_as_background(folders):
    gt_root, res_root = folders
    gt = blank()
    gt[0:2, 0:4] = 1  # 8 object pixels
    gt[2:4, 0:4] = 255  # 8 void pixels
    pred = blank()
    pred[0:4, 0:4] = 1  # object + void area
    write_sequence(gt_root, "v", [gt] * 3)
    write_sequence(res_root, "v", [pred] * 3)
    result = evaluate_folders(gt_root, res_root)
    assert result.per_sequence["J-Mean"].iloc[0] == pytest.approx(8 / 16)


def test_objects_are_those_of_the_first_frame_and_a_missing_object_scores_zero(folders):
    gt_root, res_root = folders
    late = two_objects()
    late[0, 7] = 3  # id 3 only appears later: not an object of this sequence
    first = blank()
    first[1:3, 1:3] = 1
    first[5:7, 5:7] = 2
    only_first = blank()
    only_first[1:3, 1:3] = 1
    write_sequence(gt_root, "m", [first, late, late])
    write_sequence(res_root, "m", [first, only_first, only_first])
    result = evaluate_folders(gt_root, res_root)
    table = result.per_sequence.set_index("Sequence")
    assert list(table.index) == ["m_1", "m_2"]
    assert table.loc["m_1", "J-Mean"] == 1.0 and table.loc["m_1", "F-Mean"] == 1.0
    assert table.loc["m_2", "J-Mean"] == 0.0 and table.loc["m_2", "F-Mean"] == 0.0
    assert result.jf_mean == pytest.approx(0.5)


def test_global_mean_is_over_all_objects_of_all_sequences(folders):
    gt_root, res_root = folders
    single = blank()
    single[1:3, 1:3] = 1
    write_sequence(gt_root, "one", [single] * 3)
    write_sequence(res_root, "one", [single] * 3)  # 1 object, perfect
    write_sequence(gt_root, "two", [two_objects()] * 3)
    write_sequence(res_root, "two", [blank()] * 3)  # 2 objects, both missed
    result = evaluate_folders(gt_root, res_root)
    assert result.global_results["J-Mean"].iloc[0] == pytest.approx(1 / 3)  # not the mean of sequence means


def test_davis2016_mode_treats_every_nonzero_pixel_as_the_object(folders):
    gt_root, res_root = folders
    gt = blank()
    gt[2:6, 2:6] = 255  # DAVIS-2016 annotations are 0/255
    pred = blank()
    pred[2:6, 2:6] = 1
    write_sequence(gt_root, "s", [gt] * 3)
    write_sequence(res_root, "s", [pred] * 3)
    assert evaluate_folders(gt_root, res_root, davis2016=True).jf_mean == 1.0
    # without the flag, 255 is void and the sequence has no object to evaluate
    with pytest.raises(UserError, match="holds no object .*pass --davis2016"):
        write_sequence(res_root, "s", [gt] * 3)
        evaluate_folders(gt_root, res_root)


@pytest.mark.parametrize("pred_value, message", [(3, "holds id 3 but the first ground-truth frame has only 2"),
                                                 (255, "void label 255")])
def test_invalid_prediction_ids_are_clear_errors(folders, pred_value, message):
    gt_root, res_root = folders
    write_sequence(gt_root, "a", [two_objects()] * 3)
    write_sequence(res_root, "a", [blank(pred_value)] * 3)
    with pytest.raises(UserError, match=message):
        evaluate_folders(gt_root, res_root)


def test_missing_files_sizes_and_rgb_masks_are_clear_errors(folders):
    gt_root, res_root = folders
    write_sequence(gt_root, "a", [two_objects()] * 4)
    write_sequence(res_root, "a", [two_objects()] * 2)  # frame 00002 missing
    with pytest.raises(UserError, match="lacks 1 predicted masks, first 00002.png"):
        evaluate_folders(gt_root, res_root)
    write_sequence(res_root, "a", [blank(shape=(8, 9))] * 4)
    with pytest.raises(UserError, match="predicted masks are 9x8, ground truth 8x8"):
        evaluate_folders(gt_root, res_root)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(res_root / "a" / "00001.png")
    with pytest.raises(UserError, match="RGB image, not a label map"):
        evaluate_folders(gt_root, res_root)
    with pytest.raises(UserError, match="sequence b has no ground truth"):
        evaluate_folders(gt_root, res_root, sequences=["a", "b"])
    write_sequence(gt_root, "b", [two_objects()] * 3)
    with pytest.raises(UserError, match="sequence b has no results folder"):  # checked before any work
        evaluate_folders(gt_root, res_root)


def test_csv_outputs_at_full_precision(folders, tmp_path):
    gt_root, res_root = folders
    gt = blank()
    gt[1:4, 1:4] = 1
    pred = blank()
    pred[1:4, 1:3] = 1
    write_sequence(gt_root, "p", [gt] * 3)
    write_sequence(res_root, "p", [pred] * 3)
    result = evaluate_folders(gt_root, res_root)
    write_results(result, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "global_results.csv")
    assert list(table.columns) == GLOBAL_COLUMNS
    assert table["J-Mean"].iloc[0] == 6 / 9  # exact round trip of the float
    per_seq = pd.read_csv(tmp_path / "out" / "per-sequence_results.csv")
    assert list(per_seq.columns) == ["Sequence", "J-Mean", "F-Mean"] and per_seq["Sequence"][0] == "p_1"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["global_results.csv", "per-sequence_results.csv"]


def test_youtube_submission_holds_the_annotated_frames_only(tmp_path):
    frames_root, results = tmp_path / "valid" / "JPEGImages", tmp_path / "results"
    for video, frames in (("v1", ["00000", "00005"]), ("v2", ["00010"])):
        (frames_root / video).mkdir(parents=True)
        for frame in frames:
            Image.new("RGB", (4, 4)).save(frames_root / video / f"{frame}.jpg")
    for video, frames in (("v1", ["00000", "00001", "00005"]), ("v2", ["00010", "00011"])):
        for frame in frames:
            write_label_map(results / video / f"{frame}.png", blank(1, (4, 4)))
    path, count = package_youtube_submission(results, frames_root, tmp_path / "sub.zip")
    assert count == 3
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["Annotations/v1/00000.png", "Annotations/v1/00005.png",
                                              "Annotations/v2/00010.png"]
    (results / "v2" / "00010.png").unlink()
    with pytest.raises(UserError, match="00010.png is missing"):
        package_youtube_submission(results, frames_root, tmp_path / "sub2.zip")
    assert not (tmp_path / "sub2.zip").exists() and [p.name for p in tmp_path.glob(".*")] == []


@pytest.mark.e2e
def test_cli_evaluate_writes_csvs_and_prints_the_table(folders, tmp_path):
    gt_root, res_root = folders
    write_sequence(gt_root, "a", [two_objects()] * 3)
    write_sequence(res_root, "a", [two_objects()] * 3)
    write_sequence(gt_root, "b", [two_objects()] * 3)
    result = subprocess.run([sys.executable, "-m", "qmvos_lab", "evaluate", "--gt", str(gt_root), "--results",
                             str(res_root), "--output", str(tmp_path / "out"), "--sequences", "a", "--quiet"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "J&F-Mean" in result.stdout and "a_2" in result.stdout
    assert (tmp_path / "out" / "global_results.csv").is_file()
    bad = subprocess.run([sys.executable, "-m", "qmvos_lab", "evaluate", "--gt", str(gt_root), "--results",
                          str(res_root), "--output", str(tmp_path / "out2"), "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "sequence b has no results folder" in bad.stderr


def shifted_square(shape, top, left, size, shift):
    mask = np.zeros(shape, bool)
    mask[top:top + size, left + shift:left + shift + size] = True
    return mask


def by_hand(values):
    """Mean, Recall (> 0.5) and Decay (first minus last of 4 bins with the official edges
    round(linspace(1, N, 5) + 1e-10) - 1, inclusive at both ends)."""
    values = np.asarray(values, float)
    edges = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(int)
    decay = values[edges[0]:edges[1] + 1].mean() - values[edges[3]:edges[4] + 1].mean()
    return values.mean(), (values > 0.5).mean(), decay


def test_every_global_column_from_varied_per_frame_scores(folders, tmp_path):
    """Two sequences, three objects; J and F differ, vary per frame, recall differs from mean; every
    column of global_results.csv is the mean over objects of the per-object statistics."""
    from qmvos_lab.eval.metrics import f_measure

    gt_root, res_root = folders
    shape = (24, 24)  # boundary radius ceil(0.008 * 33.9) = 1
    shifts = [0, 1, 2, 3, 4, 5, 6, 7]  # object 1 drifts right over the 8 evaluated frames
    gt_frames, pred_frames, truth = [], [], {"v_1": [], "v_2": [], "w_1": []}
    for t in range(10):
        gt = np.zeros(shape, np.uint8)
        gt[shifted_square(shape, 4, 2, 8, 0)] = 1
        gt[shifted_square(shape, 15, 14, 6, 0)] = 2
        pred = np.zeros(shape, np.uint8)
        if 1 <= t <= 8:
            one = shifted_square(shape, 4, 2, 8, shifts[t - 1])
            pred[one] = 1
            if t <= 4:  # object 2 is found on the first half only
                pred[shifted_square(shape, 15, 14, 6, 0)] = 2
            for name, obj in (("v_1", 1), ("v_2", 2)):
                inter, union = ((gt == obj) & (pred == obj)).sum(), ((gt == obj) | (pred == obj)).sum()
                truth[name].append((inter / union, f_measure(gt == obj, pred == obj)))
        gt_frames.append(gt)
        pred_frames.append(pred)
    write_sequence(gt_root, "v", gt_frames)
    write_sequence(res_root, "v", pred_frames)
    gt_w, pred_w = [], []
    for t in range(5):  # a second sequence, one object, grown by t pixels on each side
        gt, pred = blank(shape=shape), blank(shape=shape)
        gt[8:16, 8:16] = 1
        pred[8 - t:16 + t, 8 - t:16 + t] = 1
        gt_w.append(gt)
        pred_w.append(pred)
        if 1 <= t <= 3:
            truth["w_1"].append((64 / (8 + 2 * t) ** 2, f_measure(gt == 1, pred == 1)))
    write_sequence(gt_root, "w", gt_w)
    write_sequence(res_root, "w", pred_w)

    j = {name: [a for a, _ in rows] for name, rows in truth.items()}
    f = {name: [b for _, b in rows] for name, rows in truth.items()}
    assert j["v_1"] != f["v_1"] and len(set(j["v_1"])) == 8 and len(set(f["v_1"])) > 2  # J != F, both vary
    assert by_hand(j["v_1"])[0] != by_hand(j["v_1"])[1] and by_hand(j["v_1"])[2] != 0  # recall != mean, decay
    stats = {name: (*by_hand(j[name]), *by_hand(f[name])) for name in truth}
    expected = np.mean([stats[name] for name in ("v_1", "v_2", "w_1")], axis=0)  # over objects

    write_results(evaluate_folders(gt_root, res_root), tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "global_results.csv")
    row = table.iloc[0]
    for column, value in zip(GLOBAL_COLUMNS[1:], expected):
        assert row[column] == pytest.approx(value, rel=1e-12, abs=1e-15), column
    assert row["J&F-Mean"] == pytest.approx((expected[0] + expected[3]) / 2, rel=1e-12)
    per_seq = pd.read_csv(tmp_path / "out" / "per-sequence_results.csv").set_index("Sequence")
    for name in truth:
        assert per_seq.loc[name, "J-Mean"] == pytest.approx(stats[name][0], rel=1e-12)
        assert per_seq.loc[name, "F-Mean"] == pytest.approx(stats[name][3], rel=1e-12)


def test_the_demo_jf_helper_agrees_with_the_folder_protocol(folders):
    """eval.videos.jf_table / jf_mean (used by the demo and the zoo) score like evaluate_folders."""
    from qmvos_lab.data.synthetic import SyntheticConfig, generate_video
    from qmvos_lab.eval.videos import jf_mean, jf_table

    gt_root, res_root = folders
    videos, predictions = [], []
    for seed in range(2):
        video = generate_video(SyntheticConfig(num_objects=2, length=6, height=32, width=48), seed, name=f"g{seed}")
        pred = video.labels.copy()
        pred[2:] = np.roll(video.labels[2:], shift=seed + 2, axis=2)  # drifting predictions
        pred[3, :, :10] = 0
        videos.append(video)
        predictions.append(pred)
        write_sequence(gt_root, video.name, video.labels)
        write_sequence(res_root, video.name, pred)
    table = jf_table(videos, predictions)
    result = evaluate_folders(gt_root, res_root)
    expected = result.per_sequence.set_index("Sequence")
    assert list(table["Sequence"]) == list(expected.index)
    np.testing.assert_allclose(table["J-Mean"], expected["J-Mean"], rtol=1e-12)
    np.testing.assert_allclose(table["F-Mean"], expected["F-Mean"], rtol=1e-12)
    assert jf_mean(table) == pytest.approx(result.jf_mean, rel=1e-12)
    assert table["J-Mean"].nunique() > 1 and (table["J-Mean"] != table["F-Mean"]).any()
