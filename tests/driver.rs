//! Shared helpers of the test binary: agreement with a reference, and thread pools.
//!
//! The random cases and the property suite come from the conformance kit
//! (`backprop_verify::strategies` and `backprop_verify::conformance_tests!`).

/// Asserts that a loss and gradient agree with the reference's to `tolerance`,
/// relative for the loss and relative to `1 + |reference|` per component.
pub(crate) fn assert_agrees(
    label: &str,
    (loss, gradient): (f64, &[f64]),
    (reference_loss, reference): (f64, &[f64]),
    tolerance: f64,
) {
    assert!(
        (loss - reference_loss).abs() <= tolerance * reference_loss.abs(),
        "{label}: loss {loss} vs {reference_loss}"
    );
    for (a, b) in gradient.iter().zip(reference) {
        assert!(
            (a - b).abs() <= tolerance * (1.0 + b.abs()),
            "{label}: {a} vs {b}"
        );
    }
}

/// A pool of `threads` threads.
pub(crate) fn pool(threads: usize) -> std::sync::Arc<rayon::ThreadPool> {
    std::sync::Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool"),
    )
}
