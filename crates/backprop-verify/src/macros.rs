//! `conformance_tests!`: the whole property suite for one backend, in an author's own `tests/`.

/// Expands, in a test crate, to a module of tests that hold a backend to
/// the whole protocol: property tests against both oracles in `f64` (and
/// against the `f64` oracle in `f32`, if an `f32` constructor is given), the
/// forward outputs, the batch law, the SGD step and determinism on random
/// cases from [`strategies`](crate::strategies); the case matrix with its
/// tile-edge shapes on one instance; and the negative controls wrapped
/// around the backend, each of which must be rejected.
///
/// Each constructor is an expression evaluated afresh for every backend
/// the tests need.
///
/// ```text
/// backprop_verify::conformance_tests!(my_kernel, f64: MyKernel::<f64>::new(), f32: MyKernel::<f32>::new());
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident, f64: $make_f64:expr $(, f32: $make_f32:expr)? $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            $crate::proptest::proptest! {
                #![proptest_config($crate::strategies::config())]

                #[test]
                fn f64_passes_every_check(
                    case in $crate::strategies::case(),
                    seed in $crate::proptest::prelude::any::<u64>(),
                ) {
                    let mut backend = $make_f64;
                    let reports = $crate::suite::check_f64(&mut backend, &case, seed);
                    $crate::proptest::prop_assert!(
                        $crate::suite::all_passed(&reports),
                        "{}\n{}",
                        case.network.architecture(),
                        $crate::suite::describe(&reports)
                    );
                }
            }

            $(
                $crate::proptest::proptest! {
                    #![proptest_config($crate::strategies::config())]

                    #[test]
                    fn f32_passes_every_check(case in $crate::strategies::case()) {
                        let mut backend = $make_f32;
                        let reports = $crate::suite::check_f32(&mut backend, &case);
                        $crate::proptest::prop_assert!(
                            $crate::suite::all_passed(&reports),
                            "{}\n{}",
                            case.network.architecture(),
                            $crate::suite::describe(&reports)
                        );
                    }
                }

                #[test]
                fn f32_matrix_passes_on_one_instance() {
                    let report = $crate::Conformance::<f32>::new(stringify!($module), || $make_f32)
                        .quick()
                        .without_controls()
                        .run()
                        .expect("a valid matrix");
                    assert!(report.passed(), "{report}");
                }
            )?

            #[test]
            fn f64_matrix_passes_on_one_instance() {
                let report = $crate::Conformance::<f64>::new(stringify!($module), || $make_f64)
                    .quick()
                    .without_controls()
                    .run()
                    .expect("a valid matrix");
                assert!(report.passed(), "{report}");
            }

            #[test]
            fn every_wrapped_control_is_rejected() {
                let matrix = $crate::Matrix::new(&[1], &[]).expect("a valid matrix");
                let error = <f64 as $crate::CheckPrecision>::CONTROL_ERROR;
                for flaw in $crate::OutputFlaw::all(error) {
                    let mut flawed = $crate::Flawed::new($make_f64, flaw);
                    let report =
                        $crate::conformance::control_report::<f64>(flaw.to_string(), &mut flawed, &matrix);
                    assert!(report.rejected(), "{}", report.line());
                }
            }
        }
    };
}
