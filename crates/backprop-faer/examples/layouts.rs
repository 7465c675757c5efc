//! Measures faer's GEMM rate for every storage order of the operands, to choose each product's layout.
//!
//! Run with `cargo run --release -p backprop-faer --example layouts`, or with
//! `-- SIDE [ROUNDS]` (default 1024 and 7), or `-- M N K ROUNDS` for the
//! product `(M x K) (K x N)`. For `f32` and `f64` it times the product in
//! the eight layouts, named as with faer's own
//! (column-major) matrices: `C = A B^T` means `dst`, `lhs` column-major and
//! `rhs` stored column-major but used transposed (so a row-major operand);
//! `C^T = ...` writes the product into the transpose of a column-major `C`
//! (a row-major destination). Each layout runs sequentially (`Par::Seq`), on
//! two threads (`Par::rayon(2)`), and as two sequential halves of the output
//! run at once under `rayon::join` ("2 x seq"): the rate two independent
//! sequential products reach together. Layouts are timed interleaved, round
//! after round, and each figure is the median over the rounds, in GFLOP/s
//! (`2 M N K` flops a product).

use std::time::Instant;

use faer::linalg::matmul::matmul;
use faer::traits::ComplexField;
use faer::{Accum, Mat, MatMut, MatRef, Par};

/// The eight layouts: name, `dst` transposed, `lhs` transposed, `rhs` transposed.
const LAYOUTS: [(&str, bool, bool, bool); 8] = [
    ("C = A B", false, false, false),
    ("C = A^T B", false, true, false),
    ("C^T = A^T B", true, true, false),
    ("C^T = A^T B^T", true, true, true),
    ("C = A B^T", false, false, true),
    ("C = A^T B^T", false, true, true),
    ("C^T = A B", true, false, false),
    ("C^T = A B^T", true, false, true),
];

/// How a product is run.
#[derive(Clone, Copy)]
enum Way {
    Sequential,
    FaerParallel,
    TwoHalves,
}

/// `dst = lhs * rhs` as two sequential halves of `dst`'s columns, at once.
fn two_halves<T: ComplexField + Copy>(
    dst: MatMut<'_, T>,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    one: T,
) {
    let half = dst.ncols() / 2;
    let (left, right) = dst.split_at_col_mut(half);
    let (rhs_left, rhs_right) = rhs.split_at_col(half);
    rayon::join(
        || matmul(left, Accum::Replace, lhs, rhs_left, one, Par::Seq),
        || matmul(right, Accum::Replace, lhs, rhs_right, one, Par::Seq),
    );
}

/// Median GFLOP/s of each layout (rows) and way (columns), over `rounds` interleaved rounds.
fn rates<T: ComplexField + Copy>(
    (m, n, k): (usize, usize, usize),
    rounds: usize,
    fill: fn(usize) -> T,
    one: T,
) -> Vec<[f64; 3]> {
    // Each operand stored so that it has the product's shape when used as
    // the layout says, the destination likewise.
    let stored = |rows: usize, cols: usize, transposed: bool, seed: usize| {
        let (r, c) = if transposed {
            (cols, rows)
        } else {
            (rows, cols)
        };
        Mat::<T>::from_fn(r, c, |i, j| fill(i * seed + j * 3))
    };
    let flops = 2.0 * (m * n * k) as f64;
    let reps = ((4e9 / flops).ceil() as usize).clamp(1, 1000);
    let ways = [Way::Sequential, Way::FaerParallel, Way::TwoHalves];
    let run = |layout: usize, way: Way| {
        let (_, dst_t, lhs_t, rhs_t) = LAYOUTS[layout];
        let a = stored(m, k, lhs_t, 7);
        let b = stored(k, n, rhs_t, 5);
        let mut c = stored(m, n, dst_t, 0);
        let lhs = if lhs_t { a.transpose() } else { a.as_ref() };
        let rhs = if rhs_t { b.transpose() } else { b.as_ref() };
        let start = Instant::now();
        for _ in 0..reps {
            let dst = if dst_t {
                c.as_mut().transpose_mut()
            } else {
                c.as_mut()
            };
            match way {
                Way::Sequential => matmul(dst, Accum::Replace, lhs, rhs, one, Par::Seq),
                Way::FaerParallel => matmul(dst, Accum::Replace, lhs, rhs, one, Par::rayon(2)),
                Way::TwoHalves => two_halves(dst, lhs, rhs, one),
            }
        }
        flops * reps as f64 / start.elapsed().as_secs_f64() / 1e9
    };
    for layout in 0..LAYOUTS.len() {
        for way in ways {
            run(layout, way);
        }
    }
    let mut samples = vec![[const { Vec::new() }; 3]; LAYOUTS.len()];
    for _ in 0..rounds {
        for (layout, samples) in samples.iter_mut().enumerate() {
            for (w, &way) in ways.iter().enumerate() {
                samples[w].push(run(layout, way));
            }
        }
    }
    samples
        .into_iter()
        .map(|per_way| {
            per_way.map(|mut v| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            })
        })
        .collect()
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (shape, rounds) = match args[..] {
        [m, n, k, rounds, ..] => ((m, n, k), rounds),
        [side, rounds] => ((side, side, side), rounds),
        [side] => ((side, side, side), 7),
        _ => ((1024, 1024, 1024), 7),
    };
    let rounds = rounds.max(1);
    let (m, n, k) = shape;
    // Two threads, the machine class of the benchmarks, whatever the machine.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a thread pool");
    println!(
        "faer matmul ({m} x {k}) ({k} x {n}), GFLOP/s, medians of {rounds} interleaved rounds (column-major names; C^T = row-major destination)"
    );
    let f32s = pool.install(|| rates::<f32>(shape, rounds, |i| (i % 17) as f32 / 17.0, 1.0));
    let f64s = pool.install(|| rates::<f64>(shape, rounds, |i| (i % 17) as f64 / 17.0, 1.0));
    println!(
        "{:<14} | {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7}",
        "layout", "f32 1t", "2t", "2x seq", "f64 1t", "2t", "2x seq"
    );
    for (layout, (f32s, f64s)) in LAYOUTS.iter().zip(f32s.iter().zip(&f64s)) {
        print!("{:<14} |", layout.0);
        for rate in f32s {
            print!(" {rate:>7.0}");
        }
        print!(" |");
        for rate in f64s {
            print!(" {rate:>7.0}");
        }
        println!();
    }
}
