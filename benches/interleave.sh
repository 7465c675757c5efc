#!/usr/bin/env bash
# Alternates rounds of our step timer and of the peers' script, then prints the median of each.
#
# usage: benches/interleave.sh ROUNDS SHAPES DTYPES [BACKENDS] [PEERS]
#   e.g. benches/interleave.sh 9 S,M,L f32,f64
#
# Each round runs one round of `cargo run --release -p backprop-rayon
# --example steps` (BACKENDS, default faer,rayon-faer,faer-sequential,simd,rayon-simd) and
# one of benches/peers.py (PEERS, default numpy,jax,torch; each in a process
# of its own; `none` for no peer), so both see the same state of the machine. PYTHON (default
# python3) runs the script; numpy runs with OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset. With QUIET=1, each round first waits (at most 5
# minutes) for the CPUs to be at least 85% idle, so that rounds land in
# quiet spells of a shared machine. With BASE_STEPS=PATH, each round also
# runs that build of the `steps` example (say, of an older commit, built in
# a worktree of its own) with its default backends, whose names get a
# `base-` prefix. Every round's lines go to stderr; the medians over the
# rounds, in us per step, to stdout.
set -euo pipefail
rounds=${1:?usage: benches/interleave.sh ROUNDS SHAPES DTYPES [BACKENDS] [PEERS]}
shapes=${2:-S,M,L}
dtypes=${3:-f32,f64}
backends=${4:-faer,rayon-faer,faer-sequential,simd,rayon-simd}
peers=${5:-numpy,jax,torch}
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)

cargo build --quiet --release -p backprop-rayon --example steps
steps="$here/../target/release/examples/steps"

wait_quiet() {
    local deadline=$((SECONDS + 300)) idle=0
    while ((SECONDS < deadline)); do
        read -r _ u n s i w x y z _ </proc/stat
        local t1=$((u + n + s + i + w + x + y + z)) i1=$i
        sleep 3
        read -r _ u n s i w x y z _ </proc/stat
        local t2=$((u + n + s + i + w + x + y + z))
        idle=$((100 * (i - i1) / (t2 - t1)))
        ((idle >= 85)) && return 0
    done
    echo "# round $1 started with the machine ${idle}% idle" >&2
}

lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
for ((r = 0; r < rounds; r++)); do
    [[ ${QUIET:-0} == 1 ]] && wait_quiet "$r"
    "$steps" "$shapes" "$dtypes" 1 "$backends" | grep '^step' | sed "s/^step 0 /step $r /" | tee -a "$lines" >&2
    if [[ -n ${BASE_STEPS:-} ]]; then
        "$BASE_STEPS" "$shapes" "$dtypes" 1 | grep '^step' |
            sed "s/^step 0 \([SML]\) \(f..\) /step $r \1 \2 base-/" | tee -a "$lines" >&2
    fi
    [[ $peers == none ]] && continue
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$python" "$here/peers.py" \
        --shapes "$shapes" --dtypes "$dtypes" --peers "$peers" --rounds 1 --first-round "$r" |
        grep '^step' | tee -a "$lines" >&2 || true
done
echo "medians of $rounds interleaved rounds, us per step:"
sort -k3,3 -k4,4 -k5,5 -k6,6g "$lines" | awk '
    { key = $3 " " $4 " " $5; v[key, ++n[key]] = $6; if (!(key in seen)) { seen[key] = 1; order[++k] = key } }
    END { for (i = 1; i <= k; i++) { key = order[i]; c = n[key]; m = (c % 2) ? v[key, (c + 1) / 2] : (v[key, c / 2] + v[key, c / 2 + 1]) / 2; printf "%s %.1f\n", key, m } }'
