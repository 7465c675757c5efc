//! Criterion benchmarks of every registered backend, through the harness in `src/`.
//!
//! `cargo bench -- S/` runs shape S only, `cargo bench -- sweep` the sweep,
//! `cargo bench -- faer` one backend everywhere; `cargo xtask bench` runs
//! this bench and tabulates, saves and plots its results.

use backprop_benches::Harness;
use criterion::{Criterion, criterion_group, criterion_main};

fn benches(c: &mut Criterion) {
    Harness::builtin().bench(c);
}

criterion_group!(step, benches);
criterion_main!(step);
