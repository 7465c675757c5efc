//! The backends under test: one line each, all run through the same driver.

use backprop::BackendKind;

use crate::driver::backend_suite;

backend_suite!(naive, BackendKind::Naive);
backend_suite!(rayon_naive, BackendKind::RayonNaive);
backend_suite!(faer, BackendKind::Faer);
backend_suite!(rayon_faer, BackendKind::RayonFaer);
backend_suite!(simd, BackendKind::Simd);
backend_suite!(rayon_simd, BackendKind::RayonSimd);
backend_suite!(auto, BackendKind::Auto);
