#!/usr/bin/env bash
# One GPU run of at most ~8 minutes: train gpu-davis16 on 24 DAVIS-2016 train sequences, then
# evaluate on the 6 train sequences held out from that run (J&F printed), all on the GPU host.
# Usage: bash benchmarks/gpu_davis16.sh PATH/TO/davis16-240p [ITERATIONS]
set -euo pipefail
root=${1:?path to the 240p DAVIS-2016 train split}
iterations=${2:-1500}
work=$(mktemp -d)
held_out="bear boat dog-agility kite-walk surf train"
mkdir -p "$work/train/ImageSets"
ln -s "$(realpath "$root")/JPEGImages" "$work/train/JPEGImages"
ln -s "$(realpath "$root")/Annotations" "$work/train/Annotations"
grep -vxF -f <(tr ' ' '\n' <<<"$held_out") "$root/ImageSets/train.txt" > "$work/train/ImageSets/train.txt"
qmvos-lab train --preset gpu-davis16 --name gpu-davis16 --runs-dir "$work/runs" --quiet \
    --set data_root="$work/train" iterations="$iterations"
echo "trained $iterations iterations; evaluation on held-out sequences:"
python - "$root" "$work" $held_out <<'PY'
import sys, shutil
from pathlib import Path
from qmvos_lab.checkpoints import load_checkpoint
from qmvos_lab.segment import load_inputs, segment_to_folder
from qmvos_lab.config import InferenceConfig
from qmvos_lab.eval import evaluate_folders
root, work, seqs = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
model = load_checkpoint(work / "runs" / "gpu-davis16" / "final.pth")
given = work / "given"
for seq in seqs:
    (given / seq).mkdir(parents=True, exist_ok=True)
    first = sorted((root / "Annotations" / "240p" / seq).glob("*.png"))[0]
    shutil.copy(first, given / seq / first.name)
    inputs = load_inputs(root / "JPEGImages" / "240p" / seq, given / seq)
    segment_to_folder(model, inputs, work / "eval" / seq, InferenceConfig(size=-1), device="cuda", amp=True,
                      overwrite=True, progress=False)
result = evaluate_folders(root / "Annotations" / "240p", work / "eval", seqs, davis2016=True)
print(result.global_results.to_string(index=False))
PY
