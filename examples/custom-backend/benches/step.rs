//! This crate's kernel timed beside the built-in backends, through backprop's benchmark harness.

use backprop::Backend;
use backprop_benches::{ContenderError, Harness};
use criterion::Criterion;
use custom_backend::LoopKernel;

fn main() -> Result<(), ContenderError> {
    let mut criterion = Criterion::default().configure_from_args();
    let mine_f32 = || Box::new(LoopKernel::<f32>::new()) as Box<dyn Backend<f32>>;
    let mine_f64 = || Box::new(LoopKernel::<f64>::new()) as Box<dyn Backend<f64>>;
    Harness::builtin()
        .with("loops", mine_f32, mine_f64)?
        .only(&["loops", "naive", "faer"])?
        .run(&mut criterion);
    criterion.final_summary();
    Ok(())
}
