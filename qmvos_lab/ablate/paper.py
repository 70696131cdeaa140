"""What QMVOS's Table 3 reports, kept as reference data for the reruns.

Source: H. Zhou, R. Hu, X. Li, "Video Object Segmentation with Dynamic Query Modulation",
ICME 2024, arXiv:2403.11529, Table 3 (a-e). Each row is a single training run, scored by J&F on
DAVIS-2017 val; the ablated settings trail the full model by 0.4-0.6 J&F, and single-scale SIM
queries are reported as unable to converge. Table 3a also gives the speed: 37.6 FPS for QMVOS,
38.1 FPS for XMem.

`direction` is the sign of (variant - full QMVOS) in the paper: every ablation row is below the full
model, which each sub-table picks as its best setting. `jf` holds the paper's J&F where it has been
transcribed here; None means "read it in the paper" (the kit never invents a number).
"""

from __future__ import annotations

from dataclasses import dataclass

CITATION = ("Zhou, Hu & Li, Video Object Segmentation with Dynamic Query Modulation, ICME 2024 "
            "(arXiv:2403.11529), Table 3: single runs, J&F on DAVIS-2017 val")
PAPER_FPS = {"qmvos": 37.6, "xmem": 38.1}  # Table 3a
REFERENCE = "qmvos"  # the full model every row is compared with


@dataclass(frozen=True)
class PaperRow:
    table: str  # "3a" ... "3e"
    setting: str  # what the row changes with respect to the full model
    direction: int  # sign of (variant - QMVOS) J&F in the paper: -1 below, 0 the full model itself
    jf: float | None = None  # the paper's J&F (None: not transcribed here)
    note: str = ""


TABLE3 = {
    "qmvos": PaperRow("3a", "full model: SIM on F16+F8, interaction, QCIM on the readout, previous-frame queries", 0,
                      note=f"{PAPER_FPS['qmvos']} FPS"),
    "xmem": PaperRow("3a", "XMem baseline: no queries", -1, note=f"{PAPER_FPS['xmem']} FPS"),
    "sim-f16": PaperRow("3b", "SIM from F16 alone", -1, note="single-scale SIM: reported unable to converge"),
    "sim-f8": PaperRow("3b", "SIM from F8 alone", -1, note="single-scale SIM: reported unable to converge"),
    "sim-f16-f8-f4": PaperRow("3b", "SIM from F16+F8+F4", -1),
    "no-interaction": PaperRow("3c", "SIM without the multi-object interaction", -1),
    "qcim-f16": PaperRow("3d", "QCIM attends to F16 instead of the readout", -1),
    "first-frame-queries": PaperRow("3e", "queries kept from the first frame", -1),
}
