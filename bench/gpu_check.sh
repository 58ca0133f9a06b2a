#!/usr/bin/env bash
# GPU check, one script for one call on a GPU machine (under 5 minutes on one H100/H200):
#   1. the GPU (nvidia-smi -L), torch's version, whether CUDA is available;
#   2. bench/gpu_check.py: a 123.6M-parameter Llama (GPT-2 small's shape, tied embeddings) trained
#      for 50 steps on synthetic tokens through the project's own `fit` (bf16 autocast, fused AdamW,
#      compile); prints tokens/s and MFU; target MFU >= 45% on H100/H200; JSON to $OUT/gpu_check.json
#      (./gpu_check.json without $OUT, or --out PATH);
#   3. tests/train/test_parallel.py under pytest (reported as skipped when the file is absent).
#
#   bash bench/gpu_check.sh [--steps N] [--tiny] [--skip-tests] [any other bench/gpu_check.py option]
#
# --tiny (or GPU_CHECK_TINY=1): dim 64, 2 layers, seq 64, 3 steps, no compile; runs on a CPU (a
# smoke test of the script itself). --skip-tests: no pytest. Time limits (seconds):
# GPU_CHECK_TRAIN_TIMEOUT (default 180), GPU_CHECK_TEST_TIMEOUT (default 120).
#
# On a bare GPU machine the project is not installed and the registries cannot be reached: carry
# the wheels of what the image lacks in .whl/ (pydantic, pydantic_core, annotated_types,
# typing_inspection; /work/.library/device/README.md says how) and this script installs them into
# a temporary folder, then installs the project itself from this checkout (see below).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PY=${PYTHON:-$(command -v python3 || command -v python)}
export PYTHONUNBUFFERED=1

steps="" tiny=${GPU_CHECK_TINY:-0} skip_tests=0 pass=()
while (($#)); do
    case $1 in
        --steps) steps=${2:?--steps needs a number}; pass+=(--steps "$2"); shift 2 ;;
        --steps=*) steps=${1#*=}; pass+=("$1"); shift ;;
        --tiny) tiny=1; pass+=(--tiny); shift ;;
        --skip-tests) skip_tests=1; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) pass+=("$1"); shift ;;
    esac
done
if [[ -n $steps && ! $steps =~ ^[0-9]+$ ]]; then
    echo "gpu_check.sh: --steps takes a whole number, not '$steps'" >&2
    exit 2
fi
[[ $tiny == 0 ]] && unset GPU_CHECK_TINY || export GPU_CHECK_TINY=1

log_dir=${OUT:-}
section() { printf '\n===== %s =====\n' "$*"; }

# --- 1. the machine ------------------------------------------------------------------------------
section "1. device"
if command -v nvidia-smi >/dev/null; then
    gpus=$(nvidia-smi -L 2>&1 || true)
else
    gpus="(no nvidia-smi)"
fi
echo "$gpus"
n_gpus=$(grep -c '^GPU [0-9]' <<<"$gpus" || true)

# the packages the image lacks, from carried wheels
if ! "$PY" -c "import pydantic" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    site=$(mktemp -d /tmp/gpu-check-site.XXXXXX)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    echo "installed carried wheels into $site: $(cd .whl && ls *.whl | tr '\n' ' ')"
fi
# the project itself, when it is not installed: an editable install without the network (the
# image has pip, setuptools and wheel), else a folder of links laid out as pyproject's package-dir
# lays the packages out (crawl2model.train is ./train, ...) on PYTHONPATH, with PYTHONSAFEPATH=1 so
# that ./crawl2model (which lacks them) does not come first as the current folder. Both hold in
# the processes the tests start too. GPU_CHECK_NO_PIP=1 goes straight to the links.
if ! "$PY" -c "import crawl2model.train" 2>/dev/null; then
    pip_log=$(mktemp /tmp/gpu-check-pip.XXXXXX.log)
    if [[ ${GPU_CHECK_NO_PIP:-0} == 0 ]] \
        && "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . >"$pip_log" 2>&1 \
        && "$PY" -c "import crawl2model.train" 2>/dev/null; then
        echo "crawl2model was not installed: installed from $ROOT (pip install -e, no dependencies)"
    else
        [[ ${GPU_CHECK_NO_PIP:-0} == 0 ]] && { echo "pip install -e . failed:"; tail -n 5 "$pip_log"; }
        shim=$(mktemp -d /tmp/gpu-check-pkg.XXXXXX)
        mkdir "$shim/crawl2model"
        for entry in crawl2model/*; do
            [[ $(basename "$entry") == __pycache__ ]] || ln -s "$ROOT/$entry" "$shim/crawl2model/"
        done
        for sub in pipeline stages classifiers model train; do ln -s "$ROOT/$sub" "$shim/crawl2model/$sub"; done
        export PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}" PYTHONSAFEPATH=1
        echo "crawl2model is not installed: its packages come from $ROOT through the links in $shim"
    fi
fi
"$PY" - <<'EOF'
import sys, torch
print(f"python {sys.version.split()[0]} ({sys.executable}); torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuda available: {torch.cuda.is_available()}, devices: {torch.cuda.device_count()}")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs, "
          f"compute capability {p.major}.{p.minor}, bf16: {torch.cuda.is_bf16_supported()}")
try:
    import crawl2model.train.loop as loop
    print(f"crawl2model.train.loop: {loop.__file__}")
except Exception as error:  # gpu_check.py then fails with the whole traceback
    print(f"crawl2model.train.loop does not import: {error!r}")
EOF
torch_line=$("$PY" -c "import torch; print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, cuda available {torch.cuda.is_available()}')")

# --- 2. throughput and MFU through the real trainer ----------------------------------------------
section "2. training throughput (bench/gpu_check.py)"
train_log=$(mktemp /tmp/gpu-check-train.XXXXXX.log)
train_rc=0
timeout "${GPU_CHECK_TRAIN_TIMEOUT:-180}" "$PY" bench/gpu_check.py ${pass[@]+"${pass[@]}"} 2>&1 | tee "$train_log" \
    || train_rc=$?
[[ -n $log_dir ]] && cp "$train_log" "$log_dir/gpu_check_train.log"
train_line=$(grep '^GPU CHECK:' "$train_log" | tail -n 1 || true)
((train_rc == 124)) && train_line="TIMED OUT after ${GPU_CHECK_TRAIN_TIMEOUT:-180} s"
[[ -z $train_line ]] && train_line="FAILED (exit $train_rc): see the output above"

# --- 3. the parallelism tests --------------------------------------------------------------------
# With 4 or more GPUs (the largest layout has 4 processes) they run on the GPUs with NCCL, in fp32;
# with fewer (one H200 here) their processes run on the CPU with gloo, as on any machine.
section "3. parallelism tests (tests/train/test_parallel.py)"
test_file=tests/train/test_parallel.py
test_rc=0
if ((skip_tests)); then
    test_line="skipped (--skip-tests)"
elif [[ ! -f $test_file ]]; then
    test_line="skipped: $test_file does not exist in this checkout"
    echo "$test_line"
else
    test_log=$(mktemp /tmp/gpu-check-tests.XXXXXX.log)
    ((n_gpus >= 4)) && export PARALLEL_TEST_DEVICE=cuda
    timeout "${GPU_CHECK_TEST_TIMEOUT:-120}" "$PY" -m pytest -x -q "$test_file" 2>&1 | tee "$test_log" || test_rc=$?
    [[ -n $log_dir ]] && cp "$test_log" "$log_dir/gpu_check_tests.log"
    counts=$(grep -E '[0-9]+ (passed|failed|skipped|error)' "$test_log" | tail -n 1 | sed 's/=//g; s/^ *//; s/ *$//' || true)
    case $test_rc in
        0) test_line="passed ($counts; ${n_gpus} GPU(s): $( ((n_gpus >= 2)) && echo 'NCCL' || echo 'gloo on the CPU'))" ;;
        124) test_line="TIMED OUT after ${GPU_CHECK_TEST_TIMEOUT:-120} s ($counts)" ;;
        *) test_line="FAILED (exit $test_rc: ${counts:-no summary})" ;;
    esac
fi

# --- summary -------------------------------------------------------------------------------------
section "summary"
echo "device:     ${gpus//$'\n'/; }"
echo "            $torch_line"
echo "training:   $train_line"
echo "tests:      $test_line"
[[ -n $log_dir ]] && echo "figures:    $log_dir/gpu_check.json (and gpu_check_*.log)"
if ((train_rc != 0 || test_rc != 0)); then
    echo "gpu_check: FAILED"
    exit 1
fi
echo "gpu_check: done (the MFU target is reported above, it does not change the exit status)"
