#!/usr/bin/env bash
# Train gpu-davis16 on the 240p DAVIS-2016 train split less 6 held-out sequences, then evaluate on
# those 6 (J&F printed; the per-sequence table too). On the GPU host it takes ~8 minutes at 1500 iterations.
# Usage: bash benchmarks/gpu_davis16.sh PATH/TO/davis16-240p [ITERATIONS] [KEY=VALUE ...]
#   KEY=VALUE: more training settings for --set (e.g. batch_size=4); HELD_OUT="a b c" picks other
#   held-out sequences; WORK=DIR keeps the run there (default: a temporary folder); ALLOW_CPU=1
#   lets the preset train without a GPU (a dry run); evaluation runs on the GPU when there is one.
set -euo pipefail
root=${1:?path to the 240p DAVIS-2016 train split}
iterations=${2:-1500}
shift $(( $# >= 2 ? 2 : $# ))
held_out=${HELD_OUT:-"bear boat dog-agility kite-walk surf train"}
work=${WORK:-$(mktemp -d)}
export PYTHONPATH="$(cd "$(dirname "$0")/.." && pwd)${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$work/train/ImageSets"
ln -sfn "$(realpath "$root")/JPEGImages" "$work/train/JPEGImages"
ln -sfn "$(realpath "$root")/Annotations" "$work/train/Annotations"
grep -vxF -f <(tr ' ' '\n' <<<"$held_out") "$root/ImageSets/train.txt" > "$work/train/ImageSets/train.txt"
cpu=()
[ "${ALLOW_CPU:-0}" = 1 ] && cpu=(--allow-cpu)
"${PYTHON:-python3}" -m qmvos_lab train --preset gpu-davis16 --name gpu-davis16 --runs-dir "$work/runs" --quiet ${cpu[@]+"${cpu[@]}"} \
    --set data_root="$work/train" iterations="$iterations" "$@"
echo "trained $iterations iterations; evaluation on the held-out sequences ($held_out):"
"${PYTHON:-python3}" - "$root" "$work" $held_out <<'PY'
import shutil
import sys
from pathlib import Path

import torch

from qmvos_lab.checkpoints import load_checkpoint
from qmvos_lab.config import InferenceConfig
from qmvos_lab.eval import evaluate_folders
from qmvos_lab.segment import load_inputs, segment_to_folder

root, work, seqs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
device = "cuda" if torch.cuda.is_available() else "cpu"
model = load_checkpoint(work / "runs" / "gpu-davis16" / "final.pth")
given = work / "given"
for seq in seqs:
    (given / seq).mkdir(parents=True, exist_ok=True)
    first = sorted((root / "Annotations" / "240p" / seq).glob("*.png"))[0]
    shutil.copy(first, given / seq / first.name)
    inputs = load_inputs(root / "JPEGImages" / "240p" / seq, given / seq)
    segment_to_folder(model, inputs, work / "eval" / seq, InferenceConfig(size=-1), device=device,
                      amp=device == "cuda", overwrite=True, progress=False)
result = evaluate_folders(root / "Annotations" / "240p", work / "eval", seqs, davis2016=True)
print(result.global_results.to_string(index=False))
print(result.per_sequence.to_string(index=False))
PY
