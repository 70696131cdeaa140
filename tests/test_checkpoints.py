"""Loading official-format and QMVOS Lab checkpoints; ImageNet init; clear errors."""

import pytest
import torch
import torchvision

from conftest import random_official_state
from qmvos_lab.checkpoints import (CheckpointError, init_from_imagenet, inspect_state_dict, load_checkpoint,
                                   pad_single_object_value_conv, qmvos_from_xmem, read_state_dict, save_checkpoint)
from qmvos_lab.config import ModelConfig
from qmvos_lab.model import XMem, build_network


def test_released_layout_loads_strictly_with_dimensions_inferred(tmp_path):
    state = random_official_state()
    torch.save(state, tmp_path / "XMem.pth")
    model = load_checkpoint(tmp_path / "XMem.pth")
    assert model.checkpoint_info.variant == "xmem"
    assert (model.key_dim, model.value_dim, model.hidden_dim) == (64, 512, 64)
    assert not model.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name


def test_no_sensory_variant_is_detected(tmp_path):
    torch.save(random_official_state(hidden=False), tmp_path / "XMem-no-sensory.pth")
    model = load_checkpoint(tmp_path / "XMem-no-sensory.pth")
    assert model.hidden_dim == 0 and model.checkpoint_info.variant == "xmem-no-sensory"


def test_other_dimensions_are_read_from_the_weights(tmp_path):
    config = ModelConfig(key_dim=32, value_dim=256, hidden_dim=16)
    torch.save(XMem(config).state_dict(), tmp_path / "small.pth")
    assert load_checkpoint(tmp_path / "small.pth").config == config


def test_training_checkpoint_and_ddp_prefixes_are_unwrapped(tmp_path):
    state = random_official_state()
    torch.save({"it": 10, "network": {f"module.{k}": v for k, v in state.items()}, "optimizer": {}},
               tmp_path / "checkpoint.pth")
    model = load_checkpoint(tmp_path / "checkpoint.pth")
    assert torch.equal(model.state_dict()["decoder.pred.weight"], state["decoder.pred.weight"])


def test_single_object_weights_are_zero_padded_and_compute_the_same(tmp_path):
    """The 4 -> 5 channel padding is exact: the padded multi-object network ignores the extra
    channel, so it reproduces the single-object network whatever the other objects' masks are."""
    torch.manual_seed(0)
    single = XMem(ModelConfig(single_object=True)).eval()
    torch.save(single.state_dict(), tmp_path / "XMem-s0.pth")
    multi = load_checkpoint(tmp_path / "XMem-s0.pth")
    assert "single-object" in multi.checkpoint_info.variant and multi.checkpoint_info.notes
    weight = multi.state_dict()["value_encoder.conv1.weight"]
    assert weight.shape == (64, 5, 7, 7) and (weight[:, 4] == 0).all()
    assert torch.equal(weight[:, :4], single.state_dict()["value_encoder.conv1.weight"])
    image = torch.randn(1, 3, 64, 64)
    f16 = torch.randn(1, 1024, 4, 4)
    hidden = torch.randn(1, 1, 64, 4, 4)
    mask = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        expected = single.value_encoder(image, f16, hidden, mask, torch.zeros_like(mask))
        got = multi.value_encoder(image, f16, hidden, mask, torch.rand_like(mask))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_padding_leaves_multi_object_weights_alone():
    state = random_official_state()
    assert pad_single_object_value_conv(state) is state


def test_qmvos_lab_checkpoint_round_trip_is_atomic_and_keeps_config(tmp_path):
    config = ModelConfig(key_dim=16, value_dim=128, hidden_dim=8)
    model = XMem(config)
    path = save_checkpoint(model, tmp_path / "run" / "final.pth", iteration=7)
    assert [p.name for p in path.parent.iterdir()] == ["final.pth"]  # no temp file left
    content = torch.load(path, weights_only=True)
    assert content["format"] == "qmvos-lab" and content["iteration"] == 7
    assert load_checkpoint(path).config == config


def test_a_checkpoint_write_that_fails_midway_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    model = XMem(ModelConfig(key_dim=16, value_dim=128, hidden_dim=8))
    path = save_checkpoint(model, tmp_path / "run" / "checkpoint.pth", iteration=1)
    before = path.read_bytes()
    real_save = torch.save

    def dies_halfway(obj, target, *args, **kwargs):  # half a file on disk, then the process "crashes"
        real_save(obj, target, *args, **kwargs)
        if hasattr(target, "flush"):  # save_checkpoint writes through a file object
            target.flush()
        with open(getattr(target, "name", target), "r+b") as f:
            f.truncate(len(before) // 2)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, path, iteration=2)
    assert path.read_bytes() == before  # readers still see the whole previous checkpoint
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pth"]  # the partial temp file is gone
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(path, weights_only=True)["iteration"] == 1


@pytest.mark.parametrize("content, message", [
    (b"this is not a checkpoint", "cannot read checkpoint"),
    (b"PK\x03\x04 truncated zip", "cannot read checkpoint"),
])
def test_corrupt_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_truncated_real_checkpoint_is_refused(tmp_path):
    torch.save(random_official_state(), tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "cut.pth")


def test_foreign_state_dict_is_refused_naming_what_is_missing(tmp_path):
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(CheckpointError, match=r"not an XMem/QMVOS network: it has no value_encoder.conv1.weight"):
        load_checkpoint(tmp_path / "resnet18.pth")


def test_shape_mismatch_names_the_first_offending_keys(tmp_path):
    state = random_official_state()
    state["decoder.up_8_4.skip_conv.weight"] = torch.zeros(256, 255, 3, 3)
    state.pop("decoder.pred.bias")
    state["decoder.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(tmp_path / "odd.pth")
    text = str(error.value)
    assert "decoder.up_8_4.skip_conv.weight (256, 255, 3, 3) vs (256, 256, 3, 3)" in text
    assert "missing keys, first: decoder.pred.bias" in text and "unexpected keys, first: decoder.extra.weight" in text


def test_non_tensor_entries_and_missing_files(tmp_path):
    torch.save({"key_proj.key_proj.weight": [1, 2]}, tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="not a tensor"):
        read_state_dict(tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="not found: give a file, a URL, or one of XMem"):
        load_checkpoint(tmp_path / "nope.pth")


def test_saved_config_that_disagrees_with_the_weights_is_refused():
    state = random_official_state()
    with pytest.raises(CheckpointError, match="disagrees"):
        inspect_state_dict(state, "x.pth", saved_config={"key_dim": 32, "value_dim": 512, "hidden_dim": 64})


def test_checkpoint_downloads_from_a_url_into_the_cache(tmp_path, http_server):
    torch.save(random_official_state(), tmp_path / "src.pth")
    http_server.payload, http_server.filename = (tmp_path / "src.pth").read_bytes(), "XMem.pth"
    model = load_checkpoint(http_server.url(), cache_dir=tmp_path / "cache", progress=False)
    assert model.checkpoint_info.variant == "xmem"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["XMem.pth"]
    load_checkpoint(http_server.url(), cache_dir=tmp_path / "cache", progress=False)
    assert len(http_server.requests) == 1  # the second load reuses the cache


def test_truncated_download_leaves_no_checkpoint_behind(tmp_path, http_server):
    torch.save(random_official_state(), tmp_path / "src.pth")
    http_server.payload, http_server.filename = (tmp_path / "src.pth").read_bytes(), "XMem.pth"
    http_server.truncate_first, http_server.honour_range = 100, False
    with pytest.raises(CheckpointError, match="stopped early"):
        load_checkpoint(http_server.url(), cache_dir=tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache" / "XMem.pth").exists()


def test_imagenet_init_from_local_torchvision_files(tmp_path):
    torch.manual_seed(0)
    r50, r18 = torchvision.models.resnet50(), torchvision.models.resnet18()
    torch.save(r50.state_dict(), tmp_path / "r50.pth")
    torch.save(r18.state_dict(), tmp_path / "r18.pth")
    model = init_from_imagenet(XMem(), tmp_path / "r50.pth", tmp_path / "r18.pth", seed=0)
    assert torch.equal(model.key_encoder.res2[0].conv1.weight, r50.layer1[0].conv1.weight)
    assert torch.equal(model.key_encoder.layer3[5].bn3.running_var, r50.layer3[5].bn3.running_var)
    assert torch.equal(model.value_encoder.layer2[1].conv2.weight, r18.layer2[1].conv2.weight)
    conv1 = model.value_encoder.conv1.weight
    assert torch.equal(conv1[:, :3], r18.conv1.weight)
    extra = conv1[:, 3:].reshape(64, -1)  # the two mask channels, orthogonally initialised as upstream
    torch.testing.assert_close(extra @ extra.T, torch.eye(64), atol=1e-5, rtol=0)  # 64 orthonormal rows
    # the key encoder reproduces torchvision's ResNet-50 features
    image = torch.randn(1, 3, 64, 64)
    r50.eval(), model.eval()
    with torch.no_grad():
        f16 = model.key_encoder(image)[0]
        x = r50.maxpool(r50.relu(r50.bn1(r50.conv1(image))))
        expected = r50.layer3(r50.layer2(r50.layer1(x)))
    torch.testing.assert_close(f16, expected)


def test_imagenet_init_refuses_a_wrong_file(tmp_path):
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    with pytest.raises(CheckpointError, match="ResNet-50 weights .* lack layer1"):
        init_from_imagenet(XMem(), tmp_path / "r18.pth", tmp_path / "r18.pth")


@pytest.mark.parametrize("queries", [False, True])
def test_small_networks_are_recognised_from_bare_weights(tmp_path, queries):
    """A bare state dict (no saved config) of the "small" size: backbone, decoder widths and query
    width are read from the weights."""
    config = ModelConfig.of_size("small", queries=queries)
    torch.save(build_network(config).state_dict(), tmp_path / "small.pth")
    model = load_checkpoint(tmp_path / "small.pth")
    assert model.config == config
    assert "resnet18" in model.checkpoint_info.variant
    assert model.checkpoint_info.variant.startswith("qmvos [" if queries else "xmem [")


def test_qmvos_from_a_small_xmem_keeps_its_size(tmp_path):
    xmem = build_network(ModelConfig.of_size("small"))
    torch.save(xmem.state_dict(), tmp_path / "xmem-small.pth")
    model, report = qmvos_from_xmem(tmp_path / "xmem-small.pth")
    assert model.config == ModelConfig.of_size("small", queries=True)
    assert report["unused"] == ["decoder.pred.bias", "decoder.pred.weight"]


def test_imagenet_init_of_the_small_size_takes_resnet18_for_both_encoders(tmp_path):
    torch.manual_seed(0)
    r18 = torchvision.models.resnet18()
    torch.save(r18.state_dict(), tmp_path / "r18.pth")
    model = init_from_imagenet(build_network(ModelConfig.of_size("small")), resnet18=tmp_path / "r18.pth", seed=0)
    assert torch.equal(model.key_encoder.layer3[1].conv2.weight, r18.layer3[1].conv2.weight)
    assert torch.equal(model.value_encoder.layer3[1].conv2.weight, r18.layer3[1].conv2.weight)


def test_the_inference_size_of_a_recipe_travels_with_its_checkpoint(tmp_path):
    """A network trained on zoomed crops must segment at the same zoom wherever it is loaded."""
    network = build_network(ModelConfig.of_size("small"))
    assert network.inference_size == -1  # a fresh network: frames at their own size
    network.inference_size = 192
    save_checkpoint(network, tmp_path / "zoomed.pth")
    assert load_checkpoint(tmp_path / "zoomed.pth").inference_size == 192
    torch.save(random_official_state(), tmp_path / "XMem.pth")  # released weights carry no recipe
    assert load_checkpoint(tmp_path / "XMem.pth").inference_size == -1
    content = torch.load(tmp_path / "zoomed.pth", weights_only=True)
    torch.save({**content, "inference_size": "192"}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="inference_size is a str, not an integer"):
        load_checkpoint(tmp_path / "bad.pth")
