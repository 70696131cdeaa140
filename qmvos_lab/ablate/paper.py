"""What the QMVOS paper prints in its Tables 1-3, kept as reference data for the reruns.

Source: H. Zhou, R. Hu, X. Li, "Video Object Segmentation with Dynamic Query Modulation",
ICME 2024, arXiv:2403.11529. Numbers are on the paper's 0-100 scale, transcribed as printed
(tests/test_ablate_paper.py checks them against the paper's text when it is at hand).

- Table 1: DAVIS 2016 and DAVIS 2017 val, J&F / J / F for every method the paper lists.
- Table 2: YouTube-VOS 2018 and 2019 val, G / J_seen / F_seen / J_unseen / F_unseen ("-" = None).
  (In the extracted text the fourth header reads "Jseen"; by the layout it is J_unseen.)
- Table 3 (a-e): the ablations, all on DAVIS 2017 val, J&F / J / F per row; 3a adds the speed
  (FPS). With a single feature scale for the SIM the paper prints "unable to converge" (no numbers).

The paper says nothing about how many runs or seeds stand behind a row, nor about the hardware of
its FPS figures; nothing here claims either.

Where the paper disagrees with itself (kept as printed, listed in `INCONSISTENCIES`):
- Table 3a's XMem row gives F = 88.3, Table 1 (DAVIS 2017) F = 86.3 for the same J&F 83.4 and
  J 80.5; only 86.3 agrees with J&F = (J + F) / 2, so 3a's 88.3 looks like a copy of QMVOS's F.
- Tables 1 and 2 tick QMVOS's "OF" (online fine-tuning) column, while Sec. 3.4 describes no
  fine-tuning at test time.

`direction` is the sign of (variant - full QMVOS) J&F in the paper: every ablated row is below the
full model, which each sub-table picks as its setting; the single-scale rows, which did not
converge, count as below.
"""

from __future__ import annotations

from dataclasses import dataclass

CITATION = ("Zhou, Hu & Li, Video Object Segmentation with Dynamic Query Modulation, ICME 2024 "
            "(arXiv:2403.11529), Table 3: J&F / J / F on DAVIS 2017 val")
PAPER_FPS = {"qmvos": 37.6, "xmem": 38.1}  # Table 3a
REFERENCE = "qmvos"  # the full model every row is compared with
UNABLE_TO_CONVERGE = "unable to converge"


@dataclass(frozen=True)
class Score:
    """One printed row: J&F, J (region similarity) and F (contour accuracy), 0-100."""

    jf: float
    j: float
    f: float


# Table 1: method -> (J&F, J, F)
TABLE1 = {
    "davis2016": {
        "PReMVOS": Score(86.8, 84.9, 88.6),
        "CFBI": Score(89.4, 88.3, 90.5),
        "AOT-L": Score(90.0, 88.7, 91.4),
        "TBD": Score(84.3, 85.2, 83.4),
        "XMem": Score(90.2, 89.0, 91.4),
        "QMVOS": Score(90.5, 89.2, 91.8),
    },
    "davis2017": {
        "OSVOS": Score(60.3, 56.6, 63.9),
        "CINM": Score(70.6, 67.2, 74.0),
        "PReMVOS": Score(77.8, 73.9, 81.7),
        "LWL": Score(81.6, 79.1, 84.1),
        "CFBI": Score(81.9, 79.1, 84.6),
        "SST": Score(82.5, 79.9, 85.1),
        "STCN": Score(82.5, 79.3, 85.7),
        "CFBI+": Score(82.9, 80.1, 85.7),
        "JOINT": Score(83.5, 80.8, 86.2),
        "AOT-L": Score(83.6, 80.5, 86.6),
        "TBD": Score(75.2, 73.2, 77.2),
        "XMem": Score(83.4, 80.5, 86.3),
        "QMVOS": Score(84.9, 81.4, 88.3),
    },
}


@dataclass(frozen=True)
class YouTubeScore:
    """One Table 2 row: G (the mean of the four), J and F on seen and unseen classes (None: '-')."""

    g: float
    j_seen: float
    f_seen: float | None
    j_unseen: float
    f_unseen: float | None


TABLE2 = {
    "youtube2018": {
        "LWL": YouTubeScore(81.5, 80.4, 84.9, 76.4, 84.4),
        "CFBI": YouTubeScore(81.4, 81.1, 85.8, 75.3, 83.4),
        "SST": YouTubeScore(81.7, 81.2, None, 76.0, None),
        "CFBI+": YouTubeScore(82.0, 81.2, 86.0, 76.2, 84.6),
        "AOT-L": YouTubeScore(81.1, 81.6, 86.2, 74.5, 82.2),
        "TBD": YouTubeScore(77.8, 77.4, 81.2, 72.7, 79.9),
        "XMem": YouTubeScore(83.1, 83.0, 87.7, 76.5, 85.3),
        "QMVOS": YouTubeScore(83.5, 83.3, 88.0, 77.0, 85.8),
    },
    "youtube2019": {
        "LWL": YouTubeScore(81.0, 79.6, 83.8, 76.4, 84.2),
        "CFBI": YouTubeScore(81.0, 80.6, 85.1, 75.2, 83.0),
        "SST": YouTubeScore(81.8, 80.9, None, 76.6, None),
        "AOT-L": YouTubeScore(80.8, 81.0, 85.5, 74.4, 82.2),
        "XMem": YouTubeScore(83.0, 82.8, 87.1, 76.8, 85.4),
        "QMVOS": YouTubeScore(83.3, 83.0, 87.4, 77.1, 85.8),
    },
}


@dataclass(frozen=True)
class PaperRow:
    table: str  # "3a" ... "3e"
    setting: str  # what the row changes with respect to the full model
    direction: int  # sign of (variant - QMVOS) J&F in the paper: -1 below, 0 the full model itself
    jf: float | None = None  # the printed J&F (None: the paper prints no number, see `note`)
    j: float | None = None
    f: float | None = None
    printed_as: str = ""  # the row's label in the paper
    note: str = ""


_FULL = dict(jf=84.9, j=81.4, f=88.3)  # the full model, the same in every sub-table
TABLE3 = {
    "qmvos": PaperRow("3a", "full model: SIM on F16+F8, interaction, QCIM on the readout, previous-frame queries", 0,
                      **_FULL, printed_as="Ours", note=f"{PAPER_FPS['qmvos']} FPS"),
    "xmem": PaperRow("3a", "XMem baseline: no queries", -1, 83.4, 80.5, 88.3, printed_as="XMem",
                     note=f"{PAPER_FPS['xmem']} FPS; F printed 88.3 here but 86.3 in Table 1"),
    "sim-f16": PaperRow("3b", "SIM from F16 alone", -1, printed_as="w/ [F16 or F8]", note=UNABLE_TO_CONVERGE),
    "sim-f8": PaperRow("3b", "SIM from F8 alone", -1, printed_as="w/ [F16 or F8]", note=UNABLE_TO_CONVERGE),
    "sim-f16-f8-f4": PaperRow("3b", "SIM from F16+F8+F4", -1, 84.6, 81.2, 88.0, printed_as="w/ [F16, F8, F4]"),
    "no-interaction": PaperRow("3c", "SIM without the multi-object interaction", -1, 84.5, 81.3, 87.6,
                               printed_as="w/o interaction"),
    "qcim-f16": PaperRow("3d", "QCIM attends to F16 instead of the readout", -1, 84.3, 81.0, 87.6,
                         printed_as="cross with F16 feature"),
    "first-frame-queries": PaperRow("3e", "queries kept from the first frame", -1, 84.5, 81.2, 87.8,
                                    printed_as="using query from the first frame"),
}

# How the full model is labelled in each sub-table (its numbers are `_FULL` in all five).
FULL_MODEL_LABELS = {"3a": "Ours", "3b": "w/ [F16, F8]", "3c": "Our module", "3d": "cross with readout",
                     "3e": "query propagation frame by frame"}

INCONSISTENCIES = (
    "Table 3a prints XMem's F as 88.3, Table 1 (DAVIS 2017) as 86.3 with the same J&F 83.4 and J 80.5; "
    "only 86.3 gives J&F = (J + F) / 2.",
    "Tables 1 and 2 tick QMVOS's OF (online fine-tuning) column; Sec. 3.4 describes no test-time fine-tuning.",
    "Table 2's fourth column is headed 'Jseen' in the extracted text; the layout makes it J_unseen.",
)
