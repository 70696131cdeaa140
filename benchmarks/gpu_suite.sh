#!/usr/bin/env bash
# Everything the GPU figures of the speed work need, in one call of at most 8 minutes on one GPU:
#   1. inference speed (benchmarks/speed.py): our base XMem and QMVOS in fp32, AMP, AMP +
#      channels-last and AMP + channels-last + compile (compiled last), 200 frames at 854x480 with 2
#      objects, beside the official XMem evaluation loop (fp32 and its fp16 autocast) when
#      --xmem-repo names a checkout of it;
#   2. training speed (benchmarks/train_speed.py): clips/s and peak memory at the paper's clip shape
#      (8 frames, 384x384, 3 objects), AMP at batch sizes 4 and 8, AMP + compile at 8;
#   3. a gpu-davis16 training run on the 240p DAVIS-2016 train split less 6 held-out sequences,
#      evaluated on those 6 (benchmarks/gpu_davis16.sh).
# Each stage is time-boxed (a stage past its box is cut and reported, the next one runs; the boxes
# add up to 7 min 20 s), writes its log and CSV into OUT (the CSVs are rewritten after every run, so a
# cut stage keeps what it measured), and OUT/summary.md collects them with the time each took.
#
# Usage: bash benchmarks/gpu_suite.sh DATA OUT [--xmem-repo PATH] [--tiny]
#   DATA   the 240p DAVIS-2016 train split (35 MB: copy it into a git-ignored folder of the checkout,
#          e.g. .device/davis16-240p, and carry it to the GPU host)
#   OUT    the output folder (created)
#   --tiny CI-sized settings on the CPU: the dry run that tests/test_gpu_suite.py runs, so the
#          suite works the first time it meets a GPU (its figures mean nothing)
# ITERATIONS=N overrides the training run's length (default 300 on a GPU: what fits its box).
set -uo pipefail
data=${1:?usage: gpu_suite.sh DATA OUT [--xmem-repo PATH] [--tiny]}
out=${2:?usage: gpu_suite.sh DATA OUT [--xmem-repo PATH] [--tiny]}
shift 2
xmem_repo="" tiny=0
while [ $# -gt 0 ]; do
    case "$1" in
        --xmem-repo) xmem_repo=${2:?--xmem-repo needs a path}; shift 2 ;;
        --tiny) tiny=1; shift ;;
        *) echo "gpu_suite.sh: unknown argument $1 (expected --xmem-repo PATH or --tiny)" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$(dirname "$here")${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ ! -f "$data/ImageSets/train.txt" ] || [ ! -d "$data/JPEGImages/240p" ]; then
    echo "gpu_suite.sh: $data is not the 240p DAVIS-2016 train split (ImageSets/train.txt, JPEGImages/240p)" >&2
    exit 2
fi
mkdir -p "$out" || exit 2
official=()
[ -n "$xmem_repo" ] && official=(--xmem-repo "$xmem_repo")
export OUT_DIR="$out" PYTHON="${PYTHON:-python3}"  # python3: a GPU host may have no `python`

if [ "$tiny" = 1 ]; then
    speed_args=(--device cpu --height 64 --width 112 --frames 6 --warmup 2 --networks xmem-small,qmvos-small
                --modes fp32,amp+channels-last)
    train_args=(--device cpu --size small --frames 3 --crop 64 --objects 2 --batches 1 --steps 1)
    davis_iterations=${ITERATIONS:-2}
    davis_settings=(batch_size=1 num_frames=3 crop_size=64 model_size=small workers=0 amp=false
                    samples_per_epoch=4 log_every=1 checkpoint_every=2)
    boxes=(300 300 300)
else
    speed_args=(--device cuda --networks xmem,qmvos --frames 200 --warmup 20 --check-every 10)
    train_args=(--device cuda --frames 8 --crop 384 --objects 3 --steps 5)
    davis_iterations=${ITERATIONS:-300}
    davis_settings=()
    boxes=(120 120 200)
fi

summary="$out/summary.md"
{
    echo "# GPU suite ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    echo
    echo '```'
    "$PYTHON" - <<'PY'
import platform, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
print(f"{gpu}; torch {torch.__version__}; python {platform.python_version()}")
PY
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    echo '```'
} > "$summary"

status=0
stage() {  # stage NAME BOX COMMAND...: run, time-box, log, and add to the summary
    local name=$1 box=$2
    shift 2
    local tic=$SECONDS rc
    timeout --signal=TERM --kill-after=20 "$box" "$@" > "$out/$name.log" 2>&1
    rc=$?
    {
        echo
        echo "## $name ($((SECONDS - tic)) s, exit $rc$( { [ $rc = 124 ] || [ $rc = 137 ]; } && echo ", cut at its ${box} s box"))"
        echo
        echo '```'
        tail -n 60 "$out/$name.log"
        echo '```'
    } >> "$summary"
    echo "$name: exit $rc in $((SECONDS - tic)) s"
    [ $rc = 0 ] || status=1
}

# (${a[@]+"${a[@]}"}: an empty array under `set -u` on bash < 4.4)
stage inference_speed "${boxes[0]}" "$PYTHON" "$here/speed.py" "${speed_args[@]}" ${official[@]+"${official[@]}"} \
    --csv "$out/inference_speed.csv"
if [ "$tiny" = 1 ]; then
    stage training_speed "${boxes[1]}" "$PYTHON" "$here/train_speed.py" "${train_args[@]}" --csv "$out/training_speed.csv"
else  # AMP at both batch sizes, then AMP + compile at 8 (its compilation is the slow part)
    stage training_speed "${boxes[1]}" bash -c '"$PYTHON" "$0" "${@:1}" --modes amp --batches 4 8 --csv "$OUT_DIR/training_speed.csv" &&
        "$PYTHON" "$0" "${@:1}" --modes amp+compile --batches 8 --csv "$OUT_DIR/training_speed_compile.csv"' \
        "$here/train_speed.py" "${train_args[@]}"
fi
if [ "$tiny" = 1 ]; then  # the held-out sequences: the last two of the split
    export HELD_OUT="$(tail -n 2 "$data/ImageSets/train.txt" | tr '\n' ' ')" ALLOW_CPU=1
fi
WORK="$out/davis16-run" stage davis16_training "${boxes[2]}" bash "$here/gpu_davis16.sh" "$data" "$davis_iterations" \
    ${davis_settings[@]+"${davis_settings[@]}"}
rm -rf "$out/davis16-run/runs/gpu-davis16/checkpoint.pth"  # resumable state: not a result (the final weights stay)
echo "summary: $summary"
exit $status
