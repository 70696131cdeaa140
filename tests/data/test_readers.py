"""DAVIS, YouTube-VOS and generic readers on generated folders: void, late objects, odd sizes, bad files."""

import json

import numpy as np
import pytest
from PIL import Image

from qmvos_lab.data.masks import read_label_map, write_label_map
from qmvos_lab.data.frames import FrameSource, load_given_masks
from qmvos_lab.data.readers import read_davis, read_youtube
from qmvos_lab.errors import UserError


def write_frames(folder, names, size=(37, 53)):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (size[1], size[0]), (10, 20, 30)).save(folder / f"{name}.jpg")


def test_davis_2017_with_void_and_odd_sizes(tmp_path):
    names = [f"{i:05d}" for i in range(4)]
    write_frames(tmp_path / "JPEGImages" / "480p" / "odd", names)
    mask = np.zeros((37, 53), np.uint8)
    mask[5:10, 5:10], mask[20:30, 20:40], mask[0, :] = 1, 2, 255
    for name in names:
        write_label_map(tmp_path / "Annotations" / "480p" / "odd" / f"{name}.png", mask)
    (tmp_path / "ImageSets" / "2017").mkdir(parents=True)
    (tmp_path / "ImageSets" / "2017" / "val.txt").write_text("odd\n")
    [seq] = read_davis(tmp_path)
    assert seq.name == "odd" and len(seq) == 4 and len(seq.ground_truth) == 4 and list(seq.given) == [0]
    given = seq.given_masks()[0]
    assert given.shape == (37, 53) and set(np.unique(given)) == {0, 1, 2}  # void dropped from the given mask
    assert (seq.read_mask(seq.ground_truth[2])[0] == 255).all()  # kept in the ground truth (evaluation)
    assert seq.read_frame(1).shape == (37, 53, 3)


def test_davis_2016_masks_are_one_object(tmp_path):
    write_frames(tmp_path / "JPEGImages" / "480p" / "s", ["00000", "00001"])
    mask = np.zeros((37, 53), np.uint8)
    mask[3:9, 3:9] = 255
    (tmp_path / "Annotations" / "480p" / "s").mkdir(parents=True)
    for name in ("00000", "00001"):
        Image.fromarray(mask).save(tmp_path / "Annotations" / "480p" / "s" / f"{name}.png")  # grayscale 0/255
    [seq] = read_davis(tmp_path, split="val", year=2016)  # no image set: every folder
    assert set(np.unique(seq.given_masks()[0])) == {0, 1}


def test_davis_errors(tmp_path):
    write_frames(tmp_path / "JPEGImages" / "480p" / "a", ["00000", "00001"])
    write_label_map(tmp_path / "Annotations" / "480p" / "a" / "00001.png", np.zeros((37, 53), np.uint8))
    with pytest.raises(UserError, match="no mask for its first frame"):
        read_davis(tmp_path)
    write_label_map(tmp_path / "Annotations" / "480p" / "a" / "00000.png", np.zeros((10, 10), np.uint8))
    [seq] = read_davis(tmp_path)
    with pytest.raises(UserError, match="is 10x10 but the frames of a are 53x37"):
        seq.given_masks()
    (tmp_path / "JPEGImages" / "480p" / "a" / "00001.jpg").write_bytes(b"broken")
    with pytest.raises(UserError, match="cannot read frame"):
        seq.read_frame(1)
    Image.new("RGB", (53, 37), (1, 2, 3)).save(tmp_path / "Annotations" / "480p" / "a" / "00000.png")
    with pytest.raises(UserError, match="RGB image, not a label map"):
        seq.given_masks()
    with pytest.raises(UserError, match="is .* a DAVIS folder"):
        read_davis(tmp_path / "nowhere")


def make_youtube(root, all_frames=True):
    meta = {"videos": {"v1": {"objects": {"1": {"frames": ["00000", "00005"]}, "3": {"frames": ["00005"]}}}}}
    (root / "valid").mkdir(parents=True)
    (root / "valid" / "meta.json").write_text(json.dumps(meta))
    write_frames(root / "valid" / "JPEGImages" / "v1", ["00000", "00005", "00010"])
    if all_frames:
        write_frames(root / "valid_all_frames" / "JPEGImages" / "v1", [f"{i:05d}" for i in range(11)])
    first = np.zeros((37, 53), np.uint8)
    first[2:6, 2:6] = 1
    late = np.zeros((37, 53), np.uint8)
    late[20:25, 30:40] = 3
    write_label_map(root / "valid" / "Annotations" / "v1" / "00000.png", first)
    write_label_map(root / "valid" / "Annotations" / "v1" / "00005.png", late)


def test_youtube_late_objects_and_frames_to_write(tmp_path):
    make_youtube(tmp_path)
    [video] = read_youtube(tmp_path)
    assert len(video) == 11 and sorted(video.given) == [0, 5]
    assert video.save_names == {"00000", "00005", "00010"}
    masks = video.given_masks()
    assert set(np.unique(masks[5])) == {0, 3}


def test_youtube_without_all_frames_and_errors(tmp_path):
    make_youtube(tmp_path, all_frames=False)
    [video] = read_youtube(tmp_path)
    assert video.frame_names == ["00000", "00005", "00010"] and sorted(video.given) == [0, 1]
    with pytest.raises(UserError, match="meta.json not found"):
        read_youtube(tmp_path / "nothing")
    (tmp_path / "valid" / "meta.json").write_text("{not json")
    with pytest.raises(UserError, match="not a YouTube-VOS meta.json"):
        read_youtube(tmp_path)


def test_generic_folder(tmp_path):
    write_frames(tmp_path / "frames", ["a", "b", "c"])
    write_label_map(tmp_path / "masks" / "a.png", np.ones((37, 53), np.uint8))
    write_label_map(tmp_path / "masks" / "c.png", np.full((37, 53), 2, np.uint8))
    source = FrameSource(tmp_path / "frames")
    given = load_given_masks(tmp_path / "masks", source.names, source.first_frame_size())
    assert sorted(given) == [0, 2] and given[2].max() == 2
    write_label_map(tmp_path / "masks" / "zzz.png", np.ones((37, 53), np.uint8))
    with pytest.raises(UserError, match="matches no frame name"):
        load_given_masks(tmp_path / "masks", source.names, source.first_frame_size())


def test_label_maps_keep_ids_and_palette(tmp_path):
    labels = np.array([[0, 1], [7, 255]], np.uint8)
    write_label_map(tmp_path / "m.png", labels)
    np.testing.assert_array_equal(read_label_map(tmp_path / "m.png"), labels)
    assert Image.open(tmp_path / "m.png").mode == "P"
    Image.fromarray(np.array([[0, 300]], np.uint16)).save(tmp_path / "wide.png")
    assert read_label_map(tmp_path / "wide.png").tolist() == [[0, 300]]
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(UserError, match="cannot read mask"):
        read_label_map(tmp_path / "bad.png")
