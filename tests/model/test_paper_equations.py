"""Each QMVOS equation's home in qmvos_lab/model computes what its docstring says: the paper's
formula with the released code's stated differences (multi-head, scaled attention; the 1x1
projection before upsampling), checked against computations written out here by hand."""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from qmvos_lab.model import QMVOS
from qmvos_lab.model.qcim import cross_attention, dynamic_filter_logits
from qmvos_lab.model.sim import scale_fusion

ROOT = Path(__file__).resolve().parents[2]


def test_scale_fusion_is_the_sim_feature_and_projects_before_upsampling():
    torch.manual_seed(0)
    net = QMVOS().eval()
    _, _, _, f16, f8, f4 = net.encode_key(torch.randn(1, 3, 64, 96))
    fused = scale_fusion(f16, f8, net.input_proj, net.simple_upsample_block)
    assert torch.equal(fused, net.sim_feature(f16, f8, f4)) and fused.shape == (1, 256, 8, 12)
    # by hand: Conv(1x1, bias) at stride 16, bilinear x2 (corners aligned), Conv(1x1) + GN, concat F8, Conv + GN
    block = net.simple_upsample_block
    low = F.conv2d(f16, net.input_proj.weight, net.input_proj.bias)
    up = F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=True)
    up = F.group_norm(F.conv2d(up, block.up[1].weight), 32, block.up[2].weight, block.up[2].bias)
    out = torch.cat([up, f8], 1)
    out = F.group_norm(F.conv2d(out, block.output_conv[0].weight), 32, block.output_conv[1].weight,
                       block.output_conv[1].bias)
    assert torch.allclose(fused, out, atol=1e-5)


def test_cross_attention_is_multi_head_scaled_softmax_of_q_k():
    torch.manual_seed(0)
    attention = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
    x, m = torch.randn(1, 3, 16), torch.randn(1, 10, 16)
    out, weights = cross_attention(attention, x, m, need_weights=True)
    w_q, w_k, w_v = attention.in_proj_weight.chunk(3)
    b_q, b_k, b_v = attention.in_proj_bias.chunk(3)
    q = (x @ w_q.T + b_q).view(1, 3, 4, 4).transpose(1, 2)  # B x heads x N x d
    k = (m @ w_k.T + b_k).view(1, 10, 4, 4).transpose(1, 2)  # B x heads x S x d
    v = (m @ w_v.T + b_v).view(1, 10, 4, 4).transpose(1, 2)
    by_hand = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4), dim=-1)  # the released 1/sqrt(d)
    assert torch.allclose(weights, by_hand, atol=1e-6)
    heads = (by_hand @ v).transpose(1, 2).reshape(1, 3, 16)
    assert torch.allclose(out, heads @ attention.out_proj.weight.T + attention.out_proj.bias, atol=1e-5)
    # and not the printed, unscaled form Softmax(Q K^T)
    assert not torch.allclose(weights, torch.softmax(q @ k.transpose(-1, -2), dim=-1), atol=1e-3)


def test_dynamic_filter_logits_are_one_dot_product_per_object_and_pixel():
    torch.manual_seed(0)
    queries, g4 = torch.randn(2, 3, 8), torch.randn(2, 3, 8, 5, 7)
    logits = dynamic_filter_logits(queries, g4)
    assert logits.shape == (2, 3, 5, 7)
    assert torch.isclose(logits[1, 2, 4, 6], torch.dot(queries[1, 2], g4[1, 2, :, 4, 6]), atol=1e-6)
    assert torch.isclose(logits[0, 1, 0, 3], (queries[0, 1] * g4[0, 1, :, 0, 3]).sum(), atol=1e-6)


def test_every_equation_reference_names_its_paper():
    """'Eq. n' in the library and the notebook sources says whose equation it is (XMem or QMVOS),
    on the same line, before it."""
    files = sorted((ROOT / "qmvos_lab").rglob("*.py")) + sorted((ROOT / "notebooks").glob("*.py"))
    bad = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in re.finditer(r"\bEqs?\.", line):
                before = line[:match.start()]
                if "QMVOS" not in before and "XMem" not in before:
                    bad.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bad, "\n".join(bad)
