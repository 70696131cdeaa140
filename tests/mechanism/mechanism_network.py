"""The small QMVOS network the mechanism tests share (a fixture imported by name: a conftest.py here would
shadow tests/conftest.py for the `from conftest import ...` of the test modules collected after it)."""

import pytest
import torch

from qmvos_lab.config import ModelConfig
from qmvos_lab.model import build_network


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    net = build_network(ModelConfig.of_size("small", queries=True)).eval()
    with torch.no_grad():  # fresh networks start with zero queries (logit 0): give them a scale
        net.decoder.QCIM.norm3.weight.normal_()
    return net
