"""Cached trained networks: trained once, then loaded; keyed by what determines the weights."""

import time

import pytest
import torch

from qmvos_lab import zoo
from qmvos_lab.errors import UserError
from qmvos_lab.model import QMVOS, XMem

TINY = dict(iterations=3, batch_size=1, num_frames=3, crop_size=32, samples_per_epoch=3, log_every=1,
            checkpoint_every=3)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QMVOS_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("QMVOS_LAB_SMOKE", raising=False)
    return tmp_path / "cache"


def test_trained_once_then_loaded_with_the_same_weights(cache, monkeypatch):
    first = zoo.trained("qmvos-small", progress=False, **TINY)
    assert isinstance(first, QMVOS) and not first.training
    entries = list((cache / "trained").iterdir())
    assert len(entries) == 1 and (entries[0] / "final.pth").is_file() and (entries[0] / "info.json").is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("a cached network must not be trained again")

    monkeypatch.setattr(zoo, "train_entry", no_training)
    tic = time.perf_counter()
    second = zoo.trained("qmvos-small", progress=False, **TINY)
    assert time.perf_counter() - tic < 10
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_the_key_covers_the_variant_the_config_and_the_seed(cache):
    keys = {zoo.entry_for(zoo.training_config(name, seed=seed, **TINY)).folder
            for name in ("xmem-small", "qmvos-small", "no-interaction-small") for seed in (0, 1)}
    assert len(keys) == 6
    same = zoo.entry_for(zoo.training_config("xmem-small", **TINY)).folder
    assert same == zoo.entry_for(zoo.training_config("xmem-small", **TINY)).folder
    other_lr = zoo.entry_for(zoo.training_config("xmem-small", **{**TINY, "lr": 1e-4})).folder
    assert other_lr != same
    assert zoo.entry_for(zoo.training_config("xmem-small", **{**TINY, "workers": 3})).folder == same  # speed only


def test_smoke_mode_is_a_short_run_of_its_own(cache, monkeypatch):
    full = zoo.training_config("xmem-small", smoke=False)
    monkeypatch.setenv("QMVOS_LAB_SMOKE", "1")
    assert zoo.training_config("xmem-small") == full  # the environment is read by the entry points only
    smoke = zoo.training_config("xmem-small", smoke=zoo.smoke_mode())
    assert smoke.iterations == zoo.SMOKE_ITERATIONS < full.iterations
    assert zoo.entry_for(smoke).folder != zoo.entry_for(full).folder


def test_a_corrupt_entry_is_retrained_with_a_warning(cache):
    zoo.trained("xmem-small", progress=False, **TINY)
    (entry,) = (cache / "trained").iterdir()
    (entry / "final.pth").write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unreadable.*training it again"):
        again = zoo.trained("xmem-small", progress=False, **TINY)
    assert isinstance(again, XMem) and not isinstance(again, QMVOS)


def test_unknown_names_get_a_one_line_error(cache):
    with pytest.raises(UserError, match="unknown trained network 'qmvos-huge'.*xmem-small"):
        zoo.trained("qmvos-huge")
    assert "sim-f16-small" in zoo.names() and "xmem-small" in zoo.names()


def test_a_network_trains_even_when_asked_for_inside_no_grad(cache):
    with torch.no_grad():  # a notebook cell that segments and asks for a network it has not trained yet
        network = zoo.trained("xmem-small", progress=False, **TINY)
    assert isinstance(network, XMem) and (network.cache_folder / "final.pth").is_file()


def test_the_key_holds_the_resolved_fast_path_never_auto(cache, monkeypatch):
    from qmvos_lab.train import fast_path

    monkeypatch.setattr(fast_path, "choose", lambda config, cache=None, log=None: (fast_path.FastPath(True, True), {}))
    long = zoo.training_config("qmvos-small", "cpu-tiny", iterations=400)
    assert long.amp is None  # the preset leaves it to the machine
    entry = zoo.entry_for(long)
    assert entry.train.amp is True and entry.train.channels_last is True
    monkeypatch.setattr(fast_path, "choose", lambda config, cache=None, log=None: (fast_path.FastPath(False, True), {}))
    assert zoo.entry_for(long).folder != entry.folder  # another precision is another network
