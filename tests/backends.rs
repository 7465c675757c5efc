//! The backends under test: one line each, all run through the conformance kit's property suite.

use std::sync::{Arc, OnceLock};

use backprop::{BackendKind, ThreadPool};
use backprop_verify::conformance_tests;

use crate::driver::pool;

/// The 2-thread pool the parallel backends fork on.
fn two_threads() -> Arc<ThreadPool> {
    static POOL: OnceLock<Arc<ThreadPool>> = OnceLock::new();
    Arc::clone(POOL.get_or_init(|| pool(2)))
}

conformance_tests!(naive, f64: BackendKind::Naive.create::<f64>(), f32: BackendKind::Naive.create::<f32>());
conformance_tests!(faer, f64: BackendKind::Faer.create::<f64>(), f32: BackendKind::Faer.create::<f32>());
// The parallel backends in their default scheme, forced to fork for every
// batch: the path large batches take.
conformance_tests!(
    rayon_naive,
    f64: BackendKind::RayonNaive.create_forking::<f64>(two_threads()),
    f32: BackendKind::RayonNaive.create_forking::<f32>(two_threads()),
);
conformance_tests!(
    rayon_faer,
    f64: BackendKind::RayonFaer.create_forking::<f64>(two_threads()),
    f32: BackendKind::RayonFaer.create_forking::<f32>(two_threads()),
);
conformance_tests!(simd, f64: BackendKind::Simd.create::<f64>(), f32: BackendKind::Simd.create::<f32>());
conformance_tests!(
    rayon_simd,
    f64: BackendKind::RayonSimd.create_forking::<f64>(two_threads()),
    f32: BackendKind::RayonSimd.create_forking::<f32>(two_threads()),
);
conformance_tests!(auto, f64: BackendKind::Auto.create::<f64>(), f32: BackendKind::Auto.create::<f32>());
