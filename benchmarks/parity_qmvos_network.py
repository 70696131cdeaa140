"""Check the QMVOS network against the released implementation, module by module.

Usage (the released code is GPL-3.0: fetch it yourself to run it, never copy from it):
    python benchmarks/parity_qmvos_network.py --qmvos-repo /path/to/QMVOS

The released SIM block calls a method that does not exist (`forward_ffn`); for the comparison it
is patched to the identity, so that the block runs the FFN that follows it, as described. Both
networks get the same random weights and inputs (fp32, CPU, eval mode); with 3 object slots of
which 2 or 3 are filled, it prints the max relative error of the SIM queries, the QCIM-refined
segmentation (hidden state, raw decoder logits, aggregated log-odds, probabilities) and the
parameter count difference to XMem. The aggregated log-odds log(p / (1 - p)) are ill-conditioned
where p saturates, so their fp32 error is larger than that of the logits they come from;
--double separates rounding from logic.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from parity_xmem_network import patch_resnets_without_downloads, randomised_state, rel_err  # noqa: E402

from qmvos_lab.config import ModelConfig  # noqa: E402
from qmvos_lab.model import QMVOS, XMem  # noqa: E402


def import_released(repo: str):
    patch_resnets_without_downloads(repo)
    attention = importlib.import_module("model.attention_block")
    attention.SelfAtt_FFN.forward_ffn = lambda self, x: x  # the released crash, patched to the described FFN
    network = importlib.import_module("model.network")
    sys.path.pop(0)
    return network.QMVOS_Network


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qmvos-repo", required=True)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=432)
    parser.add_argument("--double", action="store_true", help="compare in float64 (separates rounding from logic)")
    args = parser.parse_args()
    if args.double:
        torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    Released = import_released(args.qmvos_repo)
    released = Released({"key_dim": 64, "value_dim": 512, "hidden_dim": 64}).eval()
    ours = QMVOS(ModelConfig(queries=True)).eval()
    state = randomised_state(released, seed=0)
    released.load_state_dict(state)
    ours.load_state_dict(state, strict=True)
    released.to(torch.get_default_dtype()), ours.to(torch.get_default_dtype())
    H, W, N = args.height, args.width, 3
    extra = sum(p.numel() for p in ours.parameters()) - sum(p.numel() for p in XMem().parameters())
    print(f"parameters: QMVOS - XMem = {extra / 1e6:.3f} M; state dicts: {len(ours.state_dict())} entries, "
          f"identical keys: {set(ours.state_dict()) == set(released.state_dict())}")
    with torch.inference_mode():
        frame = torch.randn(1, 3, H, W)
        f16_query, _, _, _, f16, f8, f4 = released.encode_key(frame)
        for filled in (3, 2):
            masks = torch.zeros(1, N, H, W)
            masks[:, 0, : H // 2, : W // 3] = 1
            masks[:, 1, H // 2:, W // 3: 2 * W // 3] = 1
            if filled == 3:
                masks[:, 2, : H // 3, 2 * W // 3:] = 1
            valid = torch.arange(N)[None] < filled
            theirs_q = released.init_query_SIM((f16_query.unsqueeze(1), f8.unsqueeze(1)), masks.unsqueeze(1), [filled])
            ours_q = ours.init_queries((f16, f8, f4), masks, valid)
            readout = torch.randn(1, N, 512, H // 16, W // 16)
            hidden = torch.randn(1, N, 64, H // 16, W // 16)
            theirs = released.segment_QCIM(theirs_q, [filled], (f16, f8, f4), readout, hidden, strip_bg=False)
            ours_out = ours.segment((f16, f8, f4), readout, hidden, queries=ours_q, object_valid=valid)[:3]
            _, raw_theirs = released.decoder(theirs_q, [filled], f16, f8, f4, hidden, readout)
            raw_ours = ours.decoder(f16, f8, f4, hidden, readout, queries=ours_q, object_valid=valid).logits
            print(f"{filled} of {N} object slots filled:")
            print(f"  SIM queries                    max relative error {rel_err(ours_q[:, :filled], theirs_q[:, :filled]):.2e}")
            print(f"  decoder with QCIM: raw logits  max relative error {rel_err(raw_ours[:, :filled], raw_theirs[:, :filled]):.2e}")
            for name, a, b in zip(("hidden", "logits", "prob"), ours_out, (theirs[0], theirs[1], theirs[3])):
                print(f"  segment with QCIM: {name:11s} max relative error {rel_err(a[:, :filled + (name != 'hidden')], b[:, :filled + (name != 'hidden')]):.2e}")


if __name__ == "__main__":
    main()
