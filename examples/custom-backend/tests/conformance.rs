//! The whole property suite of the conformance kit, on this crate's kernel, in one line.

use custom_backend::LoopKernel;

backprop_verify::conformance_tests!(loops, f64: LoopKernel::<f64>::new(), f32: LoopKernel::<f32>::new());
