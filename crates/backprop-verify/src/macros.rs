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
/// A kernel made for a few shapes names them after `shapes:`, each as
/// `(name, widths, rows)`: the random cases are then drawn among the
/// networks on those shapes that the kernel accepts, asked once as the
/// matrix asks ([`strategies::cases_for`](crate::strategies::cases_for)),
/// and the matrix and the controls run on the shapes too, as
/// [`Conformance::shape`](crate::Conformance::shape) adds them. Every
/// random case runs the oracles on the whole shape, so keep the shapes
/// small (a few thousand parameters). The arguments come in this order:
/// the module's name, `f64:`, then any of `f32:`, `shapes:` and
/// `cancellation:`, in that order.
///
/// The module takes the first argument's name, so that name must not be
/// the name of a crate the constructors use (the module would hide it).
///
/// ```text
/// backprop_verify::conformance_tests!(my_kernel, f64: MyKernel::<f64>::new(), f32: MyKernel::<f32>::new());
/// backprop_verify::conformance_tests!(classic, f64: Classic::<f64>::new(), cancellation: Allowed);
/// backprop_verify::conformance_tests!(fixed, f64: Fixed::<f64>::new(), shapes: [("mine", &[4, 5, 3], 32)]);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    (
        $module:ident, f64: $make_f64:expr
        $(, f32: $make_f32:expr)?
        $(, shapes: [$(($shape:expr, $widths:expr, $rows:expr)),+ $(,)?])?
        $(, cancellation: $mode:ident)? $(,)?
    ) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            /// The mode every test judges the backend in.
            const CANCELLATION: $crate::Cancellation = $crate::__cancellation!($($mode)?);

            /// The author's shapes, if any: the random cases are drawn on
            /// them alone, and the matrix adds them.
            fn __shapes() -> ::std::vec::Vec<$crate::Shape> {
                ::std::vec![$($($crate::Shape::new($shape, $widths, $rows)),+)?]
            }

            /// The conformance run of the matrix tests, with the author's shapes.
            fn __conformance<T: $crate::CheckPrecision>(
                run: $crate::Conformance<T>,
            ) -> $crate::Conformance<T> {
                __shapes().into_iter().fold(run, |run, shape| {
                    run.shape(shape.name, &shape.widths, shape.rows)
                })
            }

            $crate::proptest::proptest! {
                #![proptest_config($crate::strategies::config())]

                #[test]
                fn f64_passes_every_check(
                    // A backend that declines every network on the author's
                    // shapes fails here, with the reason.
                    case in match $crate::strategies::cases_for(__shapes(), &mut $make_f64) {
                        Ok(cases) => cases,
                        Err(why) => panic!("{why}"),
                    },
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
                    fn f32_passes_every_check(
                        case in match $crate::strategies::cases_for(__shapes(), &mut $make_f32) {
                            Ok(cases) => cases,
                            Err(why) => panic!("{why}"),
                        },
                    ) {
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
                    let run = $crate::Conformance::<f32>::new(stringify!($module), || $make_f32);
                    let report = __conformance(run)
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
                let run = $crate::Conformance::<f64>::new(stringify!($module), || $make_f64);
                let report = __conformance(run)
                    .cancellation(CANCELLATION)
                    .quick()
                    .without_controls()
                    .run()
                    .expect("a valid matrix");
                assert!(report.passed(), "{report}");
            }

            #[test]
            fn every_wrapped_control_is_rejected() {
                let matrix = $crate::Matrix::new(&[1], &__shapes()).expect("a valid matrix");
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
