#!/usr/bin/env bash
# Times every backend's step on S, M and L at two revisions, in alternating rounds, and prints medians and ratios.
#
# usage: benches/ab/ab.sh BASE_REV [ROUNDS] [SHAPES] [BACKENDS] [DTYPES]
#   e.g. benches/ab/ab.sh be0cd5a 3 S,M,L naive,faer,rayon-naive,rayon-faer f32,f64
#
# Builds step_timer.rs (written against the API both revisions share) once
# against BASE_REV (checked out in a temporary worktree) and once against
# the working tree, in packages of their own under target/ab, then runs the
# two binaries in turn, ROUNDS times, so that both see the same states of a
# shared machine. Prints `BACKEND SHAPE DTYPE base_us head_us head/base`
# from the medians over the rounds.
set -euo pipefail
base=${1:?usage: benches/ab/ab.sh BASE_REV [ROUNDS] [SHAPES] [BACKENDS] [DTYPES]}
rounds=${2:-3}
shapes=${3:-S,M,L}
backends=${4:-naive,faer,rayon-naive,rayon-faer}
dtypes=${5:-f32}
root=$(cd "$(dirname "$0")/../.." && pwd)
work="$root/target/ab"
mkdir -p "$work"

rm -rf "$work/base-tree"
git -C "$root" worktree add --detach --force "$work/base-tree" "$base" >/dev/null
trap 'git -C "$root" worktree remove --force "$work/base-tree" >/dev/null 2>&1 || true' EXIT

package() { # name, path of the backprop crate
    mkdir -p "$work/$1/src"
    cp "$root/benches/ab/step_timer.rs" "$work/$1/src/main.rs"
    cat >"$work/$1/Cargo.toml" <<TOML
[package]
name = "step-timer-$1"
version = "0.0.0"
edition = "2024"
publish = false
[workspace]
[dependencies]
backprop = { path = "$2" }
[profile.release]
debug = "line-tables-only"
TOML
    cargo build --quiet --release --manifest-path "$work/$1/Cargo.toml" --target-dir "$work/target"
}
package base "$work/base-tree/crates/backprop"
package head "$root/crates/backprop"

lines=$(mktemp)
for ((r = 0; r < rounds; r++)); do
    for side in base head; do
        "$work/target/release/step-timer-$side" "$shapes" "$backends" "$dtypes" | sed "s/^step /$side /" | tee -a "$lines" >&2
    done
done
echo "medians of $rounds alternating rounds, us per step:"
awk '{ key = $4 " " $2 " " $3; v[$1, key, ++n[$1, key]] = $5; keys[key] = 1 }
    function median(side, key,    c, i, j, t, a) {
        c = n[side, key]; for (i = 1; i <= c; i++) a[i] = v[side, key, i]
        for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return (c % 2) ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2 }
    END { for (key in keys) { b = median("base", key); h = median("head", key); printf "%-26s base %10.1f head %10.1f head/base %.3f\n", key, b, h, h / b } }' "$lines" | sort
rm -f "$lines"
