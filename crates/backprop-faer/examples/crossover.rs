//! Measures where running a faer product on two threads starts to pay, to set `AUTO_CROSSOVER_MNK`.
//!
//! Run with `cargo run --release -p backprop-faer --example crossover`. For
//! each product shape `(m x k) * (k x n)` it prints the median time of three
//! ways, timed interleaved: sequential (`Par::Seq`), faer's own parallel GEMM
//! (`Par::rayon(0)`), and the output split in two halves run as sequential
//! products under `rayon::join`.

use std::time::Instant;

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef, Par};

/// `dst = lhs * rhs` as two sequential halves of the longer side of `dst`, in parallel.
fn split_product<T: faer::traits::ComplexField + Copy>(
    dst: MatMut<'_, T>,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    one: T,
) {
    if dst.nrows() >= dst.ncols() {
        let half = dst.nrows() / 2;
        let (top, bottom) = dst.split_at_row_mut(half);
        let (lhs_top, lhs_bottom) = lhs.split_at_row(half);
        rayon::join(
            || matmul(top, Accum::Replace, lhs_top, rhs, one, Par::Seq),
            || matmul(bottom, Accum::Replace, lhs_bottom, rhs, one, Par::Seq),
        );
    } else {
        let half = dst.ncols() / 2;
        let (left, right) = dst.split_at_col_mut(half);
        let (rhs_left, rhs_right) = rhs.split_at_col(half);
        rayon::join(
            || matmul(left, Accum::Replace, lhs, rhs_left, one, Par::Seq),
            || matmul(right, Accum::Replace, lhs, rhs_right, one, Par::Seq),
        );
    }
}

/// Median seconds per product: sequential, faer parallel, split in two.
fn time_three<T: faer::traits::ComplexField + Copy>(
    (m, n, k): (usize, usize, usize),
    fill: fn(usize) -> T,
    one: T,
) -> [f64; 3] {
    // Row-major operands, as the backend has them.
    let lhs = Mat::<T>::from_fn(k, m, |i, j| fill(i * 7 + j * 3));
    let rhs = Mat::<T>::from_fn(n, k, |i, j| fill(i * 5 + j));
    let mut dst = Mat::<T>::from_fn(n, m, |_, _| fill(0));
    let (lhs, rhs) = (lhs.transpose(), rhs.transpose());
    let flops = (m * n * k) as f64;
    let reps = ((2e6 / flops).ceil() as usize).clamp(1, 10_000);
    let mut run = |way: usize| {
        let start = Instant::now();
        for _ in 0..reps {
            let dst = dst.as_mut().transpose_mut();
            match way {
                0 => matmul(dst, Accum::Replace, lhs, rhs, one, Par::Seq),
                1 => matmul(dst, Accum::Replace, lhs, rhs, one, Par::rayon(0)),
                _ => split_product(dst, lhs, rhs, one),
            }
        }
        start.elapsed().as_secs_f64() / reps as f64
    };
    // Warm-up of every way (packing buffers, thread pool).
    for way in 0..3 {
        run(way);
    }
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..21 {
        for (way, times) in times.iter_mut().enumerate() {
            times.push(run(way));
        }
    }
    times.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    })
}

fn main() {
    // Cubes, then the products of the benchmark shapes S, M and L
    // (forward, weight gradient, delta), as (m, n, k); or only the cubes of
    // the sizes given as arguments.
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let mut shapes: Vec<(usize, usize, usize)> = if sizes.is_empty() {
        vec![
            16, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024,
        ]
    } else {
        sizes.clone()
    }
    .iter()
    .map(|&s| (s, s, s))
    .collect();
    if sizes.is_empty() {
        shapes.extend([
            (64, 32, 64),
            (32, 64, 64),
            (128, 10, 256),
            (10, 256, 128),
            (128, 256, 10),
            (128, 256, 784),
            (256, 784, 128),
        ]);
    }
    println!("threads in rayon's pool: {}", rayon::current_num_threads());
    println!(
        "{:>5} {:>5} {:>5} {:>11} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
        "m", "n", "k", "m*n*k", "f32 seq", "faer par", "split", "f64 seq", "faer par", "split"
    );
    for shape in shapes {
        let f32s = time_three::<f32>(shape, |i| (i % 17) as f32 / 17.0, 1.0);
        let f64s = time_three::<f64>(shape, |i| (i % 17) as f64 / 17.0, 1.0);
        let (m, n, k) = shape;
        print!("{m:>5} {n:>5} {k:>5} {:>11} |", m * n * k);
        for t in f32s {
            print!(" {:>7.1}us", t * 1e6);
        }
        print!(" |");
        for t in f64s {
            print!(" {:>7.1}us", t * 1e6);
        }
        println!();
    }
}
