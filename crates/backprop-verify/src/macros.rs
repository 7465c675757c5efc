//! `conformance_tests!`: the whole property suite for one backend, in an author's own `tests/`.

/// Expands, in a test crate, to a module of tests that hold a backend to
/// the whole protocol: property tests against both oracles in `f64` (and
/// against the `f64` oracle in `f32`, if an `f32` constructor is given), the
/// forward outputs, the batch law, the SGD step, determinism and reused
/// buffers on random cases from [`strategies`](crate::strategies); the case
/// matrix with its tile-edge shapes on one instance; and the negative
/// controls wrapped around the backend, each of which must be rejected.
///
/// Each constructor is an expression evaluated afresh for every backend
/// the tests need: a fresh instance for each random case (whose checks all
/// run on it), so state a kernel keeps from one case to the next, another
/// architecture or batch size, shows only in the matrix tests, which run
/// every cell on one instance. The tolerances are strict unless `cancellation: Allowed`
/// follows (see [`Cancellation`](crate::Cancellation)).
///
/// A random case the backend declines (`Error::Unsupported` on a first
/// gradient call) is rejected as proptest rejects a case, and the search
/// draws another; too many rejections fail the test, as for any property.
/// The matrix tests pass with declined cells only if some cell was checked.
///
/// The module takes the first argument's name, so that name must not be
/// the name of a crate the constructors use (the module would hide it).
///
/// ```text
/// backprop_verify::conformance_tests!(my_kernel, f64: MyKernel::<f64>::new(), f32: MyKernel::<f32>::new());
/// backprop_verify::conformance_tests!(classic, f64: Classic::<f64>::new(), cancellation: Allowed);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident, f64: $make_f64:expr $(, f32: $make_f32:expr)? $(, cancellation: $mode:ident)? $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            /// The mode every test judges the backend in.
            const CANCELLATION: $crate::Cancellation = $crate::__cancellation!($($mode)?);

            $crate::proptest::proptest! {
                #![proptest_config($crate::strategies::config())]

                #[test]
                fn f64_passes_every_check(
                    case in $crate::strategies::case(),
                    seed in $crate::proptest::prelude::any::<u64>(),
                ) {
                    let mut backend = $make_f64;
                    $crate::proptest::prop_assume!(
                        $crate::checks::declined(&mut backend, &case).is_none(),
                        "declined by the backend"
                    );
                    let oracle = $crate::Oracle::of(&case);
                    let oracle = oracle.judging(CANCELLATION);
                    let reports = $crate::suite::check_f64_with(&mut backend, &case, &oracle, seed);
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
                        let case = case.to_precision::<f32>();
                        $crate::proptest::prop_assume!(
                            $crate::checks::declined(&mut backend, &case).is_none(),
                            "declined by the backend"
                        );
                        let oracle = $crate::Oracle::of(&case);
                        let oracle = oracle.judging(CANCELLATION);
                        let reports = $crate::suite::check_f32_with(&mut backend, &case, &oracle);
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
                        .cancellation(CANCELLATION)
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
                    .cancellation(CANCELLATION)
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
                        $crate::conformance::control_report::<f64>(
                            flaw.to_string(),
                            &mut flawed,
                            &matrix,
                            CANCELLATION,
                        );
                    assert!(report.rejected(), "{}", report.line());
                }
            }
        }
    };
}

/// The mode of [`conformance_tests!`]: strict unless one is named.
#[doc(hidden)]
#[macro_export]
macro_rules! __cancellation {
    () => {
        $crate::Cancellation::Forbidden
    };
    ($mode:ident) => {
        $crate::Cancellation::$mode
    };
}
