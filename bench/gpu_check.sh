#!/usr/bin/env bash
# One-shot GPU verification of init-tuner on a CUDA machine (written for one NVIDIA H200).
#
#   bash bench/gpu_check.sh          # on the GPU machine, from the repository root
#   bash bench/gpu_check.sh --dry    # anywhere: CPU only, tiny settings (or GPU_CHECK_DRY=1)
#
# Prints JSON lines on stdout, one object per line, each with a "check" key and "ok"
# (false with an "error" when the step failed or ran out of time; the next step still runs).
# They also go to $OUT/gpu_check.jsonl (else /tmp/gpu_check/gpu_check.jsonl), the steps'
# command output to $OUT/gpu_check.log (else /tmp/gpu_check/gpu_check.log); the last line,
# "done", names the checks that failed.
#
# Steps (bench/gpu_check.py does each one): environment; fp32/TF32/bf16 matmul peaks;
# every initializer on CPU and on CUDA from one seed; `tuner run examples/quickstart.yaml`
# --exact, --fast --population 8 and --slots 2 (counts by state, device and fp32 precision
# in the manifests, `tuner results`); `tuner replay` of a GPU trial; `tuner check --json`; and
# `bench/throughput.py --device cuda` (--fast; --fast and --exact with --sweep-k 1,8,64;
# --fast --compile --population 64).
#
# Missing Python packages travel as wheels in .whl/ (installed with --no-deps into
# /tmp/site; --dry uses the current environment); throughput.py's peer script is
# ../shared/bench/baseline_optuna_loop.py or, carried, .whl/peer/baseline_optuna_loop.py.
#
# Each step runs under its own `timeout`, and all of them under one budget
# (GPU_CHECK_BUDGET_S, default 450 s on the GPU): a step never starts with less than 20 s
# left and never runs past the budget, so the whole run ends in under 8 minutes.

set -u
cd "$(dirname "$0")/.." || exit 1

DRY=${GPU_CHECK_DRY:-0}
for arg in "$@"; do
    case $arg in
        --dry) DRY=1 ;;
        -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (use --dry or nothing)" >&2; exit 2 ;;
    esac
done
PY=${PYTHON:-python3}
WORK=${GPU_CHECK_WORK:-/tmp/gpu_check}
export GPU_CHECK_WORK=$WORK
mkdir -p "$WORK"
LOG=${OUT:+$OUT/gpu_check.log}
LOG=${LOG:-$WORK/gpu_check.log}
: >"$LOG"
JSONL=${OUT:+$OUT/gpu_check.jsonl}
JSONL=${JSONL:-$WORK/gpu_check.jsonl}
export GPU_CHECK_JSONL=$JSONL
: >"$JSONL"
if [ "$DRY" = 1 ]; then
    BUDGET=${GPU_CHECK_BUDGET_S:-900}
    DEVICE=cpu DRYFLAG=--dry DRYJSON=true
else
    BUDGET=${GPU_CHECK_BUDGET_S:-450}
    DEVICE=cuda DRYFLAG= DRYJSON=false
fi
START=$(date +%s)
DEADLINE=$((START + BUDGET))
MIN_STEP=20

line() { # check ok error-or-empty [extra json fields]
    local text="{\"check\": \"$1\", \"device\": \"$DEVICE\", \"dry\": $DRYJSON, \"ok\": $2"
    [ -n "$3" ] && text="$text, \"error\": \"$3\""
    [ -n "${4:-}" ] && text="$text, $4"
    text="$text}"
    echo "$text"
    echo "$text" >>"$JSONL"
    return 0
}

limited() { # seconds command...: coreutils timeout (kills the command's whole group)
    if command -v timeout >/dev/null; then
        timeout -k 5 "$@"
    else # the Python side still stops what it starts at the step's limit
        shift
        "$@"
    fi
}
command -v timeout >/dev/null ||
    line timeout_missing true "" "\"note\": \"no coreutils timeout: steps run without it\""

# --- carried wheels (the GPU machine has no network) -------------------------------------
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ "$DRY" = 1 ]; then # the current environment, whatever .whl/ holds: nothing extra
    line install true "" "\"wheels\": 0, \"note\": \"dry: using the installed packages\""
elif [ -d .whl ]; then
    n=$(ls .whl/*.whl 2>/dev/null | wc -l)
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl >>"$LOG" 2>&1; then
        export PYTHONPATH=/tmp/site:$PYTHONPATH
        line install true "" "\"wheels\": $n, \"target\": \"/tmp/site\""
    else
        line install false "pip install of .whl/*.whl failed (see the log)" "\"wheels\": $n"
    fi
else
    line install true "" "\"wheels\": 0, \"note\": \"no .whl folder: using the installed packages\""
fi
export PYTHONUNBUFFERED=1

# --- steps ---------------------------------------------------------------------------------
step() { # check-name limit-seconds gpu_check.py-arguments...
    local name=$1 limit=$2
    shift 2
    local left=$((DEADLINE - $(date +%s)))
    if [ "$left" -lt "$MIN_STEP" ]; then
        line "$name" false "skipped: the ${BUDGET}s budget of the whole run is spent"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    limited "$limit" "$PY" bench/gpu_check.py "$@" $DRYFLAG --timeout "$limit" --log "$LOG"
    local rc=$?
    case $rc in
        0) ;;
        124 | 137) line "$name" false "timed out after ${limit}s (killed)" ;;
        *) line "$name" false "gpu_check.py exited with status $rc (see the log)" ;;
    esac
}

step environment 60 env
step matmul_peaks 60 matmul # --dry: 512^3 on CPU, the code path only, not a peak
step initializers 90 inits
step tuner_run_exact 120 run --variant exact
step tuner_run_fast 120 run --variant fast
step tuner_replay 90 replay
step tuner_check 90 check
step tuner_run_slots 120 run --variant slots
step throughput_fast 120 throughput --variant fast
step throughput_sweep 150 throughput --variant sweep
step throughput_exact 150 throughput --variant exact
step throughput_compile 120 throughput --variant compile
failed=$(grep '"ok": false' "$JSONL" | sed 's/^{"check": "\([^"]*\)".*/\1/' | sort -u | paste -sd, -)
line done true "" "\"wall_s\": $(($(date +%s) - START)), \"budget_s\": $BUDGET, \"failed\": \"$failed\", \"jsonl\": \"$JSONL\""
