//! The explicit-SIMD backend: the whole step of a narrow network fused, with
//! register-blocked micro-kernels on one thread, samples in the vector lanes.
//!
//! # Layout
//!
//! Every matrix of a step lives in this backend's scratch with one row per
//! unit and one column per sample (`d_l x B`, rows padded to whole vectors):
//! the batch, not the layer width, fills the vector registers, so a layer of
//! 10 outputs uses every lane, and the activations, the softmax and the loss
//! work on whole vectors of samples. For layers `l = 1..L` (`A^0 = X^T`):
//!
//! ```text
//! Y^T                      transposed once per step, in 16 x 16 (f32) register blocks
//! X^T                      transposed the same way, one depth block of one column
//!                          panel of samples at a time, just before the tiles read it
//! forward   Z^l = W^l A^{l-1}      tile: a value of W broadcast, a vector of samples;
//!           A^l = act(Z^l + b^l), act'    in the tile's epilogue, while it is in cache
//! loss      delta^L = dJ/dZ^L, J   one pass over the output rows, samples in lanes
//! backward  delta^{l-1} = (W^l^T delta^l) (.) act'   tile as above, the product of
//!                                  slopes in the epilogue; never for l = 1
//!           dJ/db^l = row sums of delta^l
//!           dJ/dW^1 = delta^1 X     tile: a value of delta broadcast, a vector of a
//!                                  row of X (copied a block at a time, when X is
//!                                  larger than a block, just before the tiles)
//!           dJ/dW^l = delta^l A^{l-1}^T (l > 1)   A^{l-1} transposed back to one
//!                                  sample per row a block at a time, as X^T is,
//!                                  then as for the first layer
//! ```
//!
//! For a wrapper that cuts the first layer by hidden units
//! ([`FirstLayerUnits`]), a block of rows of `W^1` is one tile loop over
//! `X^T`, the layers above start from the given `A^1` and slopes, and
//! `delta^1` is handed back one hidden unit per row, as the scratch holds it
//! (formed straight in the caller's buffer when the batch is a whole number
//! of vectors); a block of rows of `dJ/dW^1` then broadcasts each unit's
//! values one after the other. A `delta^1` given one sample per row (the
//! batch split, [`FirstLayerSplit`]) is copied a block at a time into that
//! layout first.
//!
//! The slopes are formed from `Z` in the forward tiles' epilogue, from the
//! activation's own exponential (`e q^2` for the sigmoid, `4 t q^2` for
//! tanh, as `Activation::slope` defines them), not as `a (1 - a)` or
//! `1 - a^2`, which cancel to 0 where a unit saturates; the softmax
//! cross-entropy's `p - y` of a sample's largest logit is formed without
//! subtracting from 1 (`Loss::output_gradient`).
//!
//! # Memory
//!
//! Per shape, with `S` the batch rounded up to whole vectors: `A` and the
//! slopes of every layer (`2 S sum_l d_l` values), `Y^T` and two `delta`
//! buffers, each `S x` a layer's width, and 32 KiB of room for one block of
//! a product's operand (of `X^T` or `A^{l-1}^T`, never stored whole, or of
//! `X` copied); sized on the first call and reused. Blocks of the first
//! layer's weight gradient from a `delta^1` by sample add room for a block
//! of it by unit.
//!
//! The SGD step can fuse the update into the weight-gradient tiles'
//! epilogue ([`SimdBackend::with_fused_update`]): as each tile of `dJ/dW^l`
//! (and each `dJ/db^l`) is complete, it writes `theta - eta dJ/dtheta` into
//! the buffer `SgdTask::run_fused` lends (the network's spare), never over
//! the parameters; the core checks those values, the gradient and the loss
//! before they become the parameters, so a failed step leaves the network
//! as it was. By default the update follows the gradient, checked and
//! written in place by the core: fusing showed no consistent gain (see
//! [`SimdBackend::with_fused_update`]).
//!
//! # Micro-kernels
//!
//! A product tile keeps `mr x nr` vector accumulators in registers and, per
//! step of the sum, loads `nr` vectors and broadcasts `mr` values: up to 6 x 4,
//! 8 x 3, 12 x 2 or 8 x 1 vectors on AVX-512 (24 of the 32 registers hold
//! accumulators), 6 x 2 or 8 x 1 on AVX2, 4 x 2 on the portable path. Tiles
//! are cut so that their sizes differ by at most one row; a row that ends in
//! a partial vector is read and written with masks. Depth is cut into blocks
//! whose vectors stay in the level-1 cache.
//!
//! # Paths
//!
//! [`Path::Avx512`] (AVX-512F with AVX2 and FMA), [`Path::Avx2`] (AVX2 and
//! FMA) and [`Path::Portable`] (plain Rust, any CPU) run the same generic
//! code, compiled per instruction set; [`SimdBackend::new`] takes the widest
//! the CPU has, [`SimdBackend::with_path`] forces one and returns
//! [`UnsupportedPath`] if the CPU lacks it. Results are bit-identical from
//! run to run on one path; paths differ in the last bits (FMA or not, and
//! the order of the sums over the lanes).
//!
//! # Allocation
//!
//! The scratch is sized on the first call for an architecture and batch
//! size and reused, so a step on a shape seen before allocates nothing.

#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

mod kernels;
mod lanes;
mod scratch;
mod step;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::fmt;

use backprop_core::{
    AboveFirstTask, Backend, DeltaLayout, Error, FirstLayerSplit, FirstLayerUnits, FirstUnitsTask,
    FirstWeightRowsTask, ForwardTask, GradientTask, Scalar, SgdTask, SplitGradientTask,
};

use kernels::{Kernels, PortableKernels};
use lanes::Math;
use scratch::{Scratch, copy_padded, copy_unpadded};
use step::{First, FirstLayerValues, FirstOut, Weights};

/// An instruction set the backend's kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// AVX-512F registers (16 `f32` or 8 `f64`), with AVX2 and FMA.
    Avx512,
    /// AVX2 registers (8 `f32` or 4 `f64`), with FMA.
    Avx2,
    /// Plain Rust on arrays of four values, for any CPU; no fused multiply-add.
    Portable,
}

impl Path {
    /// Every path, widest first.
    pub const ALL: [Path; 3] = [Path::Avx512, Path::Avx2, Path::Portable];

    /// The path's name: `avx512`, `avx2` or `portable`.
    pub fn name(self) -> &'static str {
        match self {
            Path::Avx512 => "avx512",
            Path::Avx2 => "avx2",
            Path::Portable => "portable",
        }
    }

    /// The CPU features the path needs.
    pub fn features(self) -> &'static str {
        match self {
            Path::Avx512 => "x86-64 with avx512f, avx2 and fma",
            Path::Avx2 => "x86-64 with avx2 and fma",
            Path::Portable => "nothing",
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => kernels::Avx512Kernels::detect().is_some(),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => kernels::Avx2Kernels::detect().is_some(),
            Path::Portable => true,
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The widest path this CPU can run.
    pub fn widest() -> Path {
        Path::ALL
            .into_iter()
            .find(|path| path.is_available())
            .unwrap_or(Path::Portable)
    }

    /// The paths this CPU can run, widest first.
    pub fn available() -> impl Iterator<Item = Path> {
        Path::ALL.into_iter().filter(|path| path.is_available())
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A path was forced that this CPU cannot run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnsupportedPath {
    /// The path asked for.
    pub path: Path,
}

impl fmt::Display for UnsupportedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} path needs {}, which this CPU does not have (the widest it has is {})",
            self.path,
            self.path.features(),
            Path::widest()
        )
    }
}

impl std::error::Error for UnsupportedPath {}

/// A [`Scalar`] the SIMD kernels are written for: `f32` or `f64`.
///
/// Sealed: its crate-private supertrait carries the vector math constants
/// and picks the kernels of a path.
#[allow(private_bounds)]
pub trait SimdScalar: Scalar + Math + Dispatch {}

impl SimdScalar for f32 {}
impl SimdScalar for f64 {}

/// Work that runs with the kernels of some path.
trait Job<T: Math> {
    type Output;
    fn run<K: Kernels<T>>(self, kernels: K) -> Self::Output;
}

/// Runs a job with the kernels of a path.
trait Dispatch: Math {
    /// Runs `job` with `path`'s kernels, or with the portable ones if the
    /// CPU cannot run `path` (which [`SimdBackend::with_path`] rules out).
    fn dispatch<J: Job<Self>>(path: Path, job: J) -> J::Output;
}

macro_rules! dispatch {
    ($($t:ty),*) => {$(
        impl Dispatch for $t {
            fn dispatch<J: Job<$t>>(path: Path, job: J) -> J::Output {
                #[cfg(target_arch = "x86_64")]
                match path {
                    Path::Avx512 => {
                        if let Some(kernels) = kernels::Avx512Kernels::detect() {
                            return job.run(kernels);
                        }
                    }
                    Path::Avx2 => {
                        if let Some(kernels) = kernels::Avx2Kernels::detect() {
                            return job.run(kernels);
                        }
                    }
                    Path::Portable => {}
                }
                #[cfg(not(target_arch = "x86_64"))]
                let _ = path;
                job.run(PortableKernels)
            }
        }
    )*};
}

dispatch!(f32, f64);

/// The lanes of `path`'s vectors for `T`.
fn lanes_of<T: SimdScalar>(path: Path) -> usize {
    struct Lanes;
    impl<T: Math> Job<T> for Lanes {
        type Output = usize;
        fn run<K: Kernels<T>>(self, _: K) -> usize {
            K::LANES
        }
    }
    T::dispatch(path, Lanes)
}

/// The explicit-SIMD backend (see the crate docs): one thread, the whole
/// step fused, for networks narrow enough that GEMM libraries spend more
/// time around their products than in them.
///
/// Holds its [`Path`] and its scratch; build one per thread.
#[derive(Debug)]
pub struct SimdBackend<T> {
    path: Path,
    scratch: Scratch<T>,
    fused_update: bool,
}

impl<T: SimdScalar> Default for SimdBackend<T> {
    fn default() -> Self {
        SimdBackend::new()
    }
}

impl<T: SimdScalar> SimdBackend<T> {
    /// A backend on the widest path this CPU has ([`Path::widest`]).
    pub fn new() -> Self {
        SimdBackend {
            path: Path::widest(),
            scratch: Scratch::default(),
            fused_update: false,
        }
    }

    /// A backend forced onto `path`; an error if this CPU cannot run it.
    pub fn with_path(path: Path) -> Result<Self, UnsupportedPath> {
        if !path.is_available() {
            return Err(UnsupportedPath { path });
        }
        Ok(SimdBackend {
            path,
            scratch: Scratch::default(),
            fused_update: false,
        })
    }

    /// The same backend with the SGD update fused into the weight-gradient
    /// tiles (`true`) or applied after the gradient (`false`, the default).
    ///
    /// Fused, each tile of `dJ/dW^l` writes `theta - eta dJ/dtheta` into the
    /// buffer [`SgdTask::run_fused`] lends, and the core then reads those
    /// values and the gradient to check them. Unfused, the core proves the
    /// update finite from one read of the gradient and writes it in place
    /// ([`SgdTask::apply_update`]). On the machine the defaults were
    /// measured on (`cargo run --release --example check_cost -- S M f64`,
    /// both against the same unchecked step in one run), fused was about
    /// 7.7 points slower than unfused on S in `f32`, 7.3 points faster on S
    /// in `f64` and within 2 points on M: no consistent gain, so it is off
    /// by default. Both give the same parameters up to the rounding of one
    /// multiply-add.
    pub fn with_fused_update(mut self, fused: bool) -> Self {
        self.fused_update = fused;
        self
    }

    /// The path the backend runs.
    pub fn path(&self) -> Path {
        self.path
    }

    /// Whether the SGD update is fused into the gradient (see
    /// [`SimdBackend::with_fused_update`]).
    pub fn fuses_update(&self) -> bool {
        self.fused_update
    }
}

/// Runs `rounds` steps of 12 independent chains of vector multiply-adds on
/// `path` (the widest available if the CPU lacks it) and returns their sum:
/// `rounds x 12 x lanes x 2` flops with no memory traffic, so that a
/// benchmark can measure one core's FMA peak, the bound of every product.
pub fn fma_peak_loop<T: SimdScalar>(path: Path, rounds: usize, seed: T) -> T {
    struct Chains<T>(usize, T);
    impl<T: Math> Job<T> for Chains<T> {
        type Output = T;
        fn run<K: Kernels<T>>(self, k: K) -> T {
            k.fma_chains(self.0, self.1)
        }
    }
    let path = if path.is_available() {
        path
    } else {
        Path::widest()
    };
    T::dispatch(path, Chains(rounds, seed))
}

/// The flops of [`fma_peak_loop`] on `path` for `T`: `rounds x 12 x lanes x 2`.
pub fn fma_peak_flops<T: SimdScalar>(path: Path, rounds: usize) -> f64 {
    let path = if path.is_available() {
        path
    } else {
        Path::widest()
    };
    (rounds * kernels::FMA_CHAINS * lanes_of::<T>(path) * 2) as f64
}

/// The forward pass into the caller's output.
struct ForwardJob<'a, T> {
    scratch: &'a mut Scratch<T>,
    params: &'a [T],
    x: &'a [T],
    outputs: &'a mut [T],
}

impl<T: Math> Job<T> for ForwardJob<'_, T> {
    type Output = ();
    fn run<K: Kernels<T>>(self, k: K) {
        let Scratch { plan, buffers, .. } = self.scratch;
        step::forward(k, plan, buffers, self.params, self.x, false);
        step::write_outputs(k, plan, buffers, self.outputs);
    }
}

/// A loss and gradient, with the update fused or the first layer's weights left out.
struct GradientJob<'a, T> {
    scratch: &'a mut Scratch<T>,
    weights: Weights<'a, T>,
    x: &'a [T],
    y: &'a [T],
    grad: &'a mut [T],
    first: First<'a, T>,
}

impl<T: Math> Job<T> for GradientJob<'_, T> {
    type Output = T;
    fn run<K: Kernels<T>>(self, k: K) -> T {
        let Scratch { plan, buffers, .. } = self.scratch;
        step::gradient(
            k,
            plan,
            buffers,
            self.weights,
            (self.x, self.y),
            self.grad,
            self.first,
        )
    }
}

/// Rows of the first layer's weight gradient.
struct RowsJob<'a, 'b, T> {
    task: &'a mut FirstWeightRowsTask<'b, T>,
    /// Room for the block's `delta^1` with one row per unit, if it could be sized.
    by_unit: Option<&'a mut [T]>,
    /// Room for blocks of `X`, if it could be sized.
    room: Option<&'a mut [T]>,
}

impl<T: Math> Job<T> for RowsJob<'_, '_, T> {
    type Output = ();
    fn run<K: Kernels<T>>(self, k: K) {
        let (delta, inputs, units) = (self.task.delta(), self.task.inputs(), self.task.units());
        let (layout, hidden) = (self.task.layout(), self.task.hidden());
        step::first_weight_rows(
            k,
            (delta.as_slice(), layout, hidden),
            (inputs.as_slice(), inputs.cols()),
            (inputs.rows(), units),
            self.by_unit,
            self.task.output_mut(),
            self.room,
        );
    }
}

/// A block of hidden units of the first layer's forward pass, formed in the
/// task's outputs (or, for a batch the vectors pad, in the scratch and
/// copied out).
struct UnitsJob<'a, 'b, T> {
    scratch: &'a mut Scratch<T>,
    task: FirstUnitsTask<'b, T>,
}

impl<T: Math> Job<T> for UnitsJob<'_, '_, T> {
    type Output = ();
    fn run<K: Kernels<T>>(mut self, k: K) {
        let Scratch { plan, buffers, .. } = self.scratch;
        let (x, units) = (self.task.inputs().matrix().as_slice(), self.task.units());
        let params = self.task.layers().network().params().as_slice();
        let (rows, stride) = (buffers.rows, buffers.stride);
        let (activations, slopes) = self.task.outputs_mut();
        if buffers.unpadded() {
            // No padding: the block is formed in the task's outputs.
            let into = FirstOut::Into(activations, slopes);
            step::first_layer_units(k, plan, buffers, params, x, units, into);
            return;
        }
        let out = FirstOut::Scratch { slopes: true };
        step::first_layer_units(k, plan, buffers, params, x, units.clone(), out);
        for (out, all) in [(activations, &buffers.a[0]), (slopes, &buffers.slopes[0])] {
            copy_unpadded(&all[units.start * stride..], stride, out, rows);
        }
    }
}

impl<T: SimdScalar> Backend<T> for SimdBackend<T> {
    fn name(&self) -> &'static str {
        "simd"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, T>) -> Result<(), Error> {
        let (layers, inputs, outputs) = task.into_parts();
        let lanes = lanes_of::<T>(self.path);
        self.scratch
            .fit(layers.architecture(), inputs.rows(), lanes)?;
        let job = ForwardJob {
            scratch: &mut self.scratch,
            params: layers.network().params().as_slice(),
            x: inputs.matrix().as_slice(),
            outputs,
        };
        T::dispatch(self.path, job);
        Ok(())
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, T>) -> Result<T, Error> {
        self.gradient(task, None, First::Whole)
    }

    fn run_sgd_step(&mut self, mut task: SgdTask<'_, T>) -> Result<T, Error> {
        if !self.fused_update {
            let loss = self.run_loss_and_gradient(task.gradient_task())?;
            return task.apply_update(loss);
        }
        task.run_fused(|task, updated, step| {
            self.gradient(task, Some((updated, step)), First::Whole)
        })
    }
}

impl<T: SimdScalar> SimdBackend<T> {
    /// The loss and gradient of `task`; with `update`, the SGD update
    /// `theta + step * gradient` written into `updated` too; the first
    /// layer as `first` says (its activations and slopes, when given, already
    /// in the scratch).
    fn gradient(
        &mut self,
        task: GradientTask<'_, T>,
        update: Option<(&mut [T], T)>,
        first: First<'_, T>,
    ) -> Result<T, Error> {
        let (layers, batch, mut gradient) = task.into_parts();
        let lanes = lanes_of::<T>(self.path);
        self.scratch
            .fit(layers.architecture(), batch.rows(), lanes)?;
        let params = layers.network().params().as_slice();
        let job = GradientJob {
            scratch: &mut self.scratch,
            weights: match update {
                None => Weights::Read(params),
                Some((updated, step)) => Weights::Update {
                    params,
                    updated,
                    step,
                },
            },
            x: batch.inputs().matrix().as_slice(),
            y: batch.targets().as_slice(),
            grad: gradient.as_mut_slice(),
            first,
        };
        Ok(T::dispatch(self.path, job))
    }
}

/// The first layer's weight gradient left to the caller: the step writes
/// `delta^1` (transposed back to one sample per row) instead, and a block of
/// hidden units' rows of `delta^1^T X`, from `delta^1` in either layout, is
/// one product tile loop over `X`.
impl<T: SimdScalar> FirstLayerSplit<T> for SimdBackend<T> {
    fn run_gradient_but_first_weights(
        &mut self,
        task: SplitGradientTask<'_, T>,
    ) -> Result<T, Error> {
        let (task, first_delta) = task.into_parts();
        self.gradient(task, None, First::DeltaOut(first_delta))
    }

    fn run_first_weight_rows(&mut self, task: &mut FirstWeightRowsTask<'_, T>) {
        let block = &mut self.scratch.delta_block;
        let (units, rows) = (task.units().len(), task.inputs().rows());
        // Room for a copy of a block of `delta^1` by sample, one row per
        // unit; without it, the product reads the block where it lies: the
        // same sums, only slower.
        let sized = task.layout() == DeltaLayout::BySample
            && block.resize("first-layer delta block", units, rows).is_ok();
        let by_unit = sized.then_some(&mut block[..]);
        // Room for blocks of `X`; without it, `X` is read where it lies.
        let buffers = &mut self.scratch.buffers;
        let room = buffers
            .size_block_room()
            .is_ok()
            .then_some(&mut buffers.block_room[..]);
        T::dispatch(
            self.path,
            RowsJob {
                task,
                by_unit,
                room,
            },
        );
    }
}

/// The first layer's forward pass cut by hidden units: a block of rows of
/// `W^1` is one product tile loop over `X^T`, as in the whole step, so each
/// value is the whole step's to the bit; the layers above start from the
/// given activations and slopes, read where they lie when the batch is a
/// whole number of vectors and copied into the padded scratch otherwise,
/// and `delta^1` comes back in their layout, one hidden unit per row.
impl<T: SimdScalar> FirstLayerUnits<T> for SimdBackend<T> {
    fn run_first_layer_units(&mut self, task: FirstUnitsTask<'_, T>) -> Result<(), Error> {
        let lanes = lanes_of::<T>(self.path);
        let (architecture, rows) = (task.layers().architecture(), task.inputs().rows());
        self.scratch.fit(architecture, rows, lanes)?;
        T::dispatch(
            self.path,
            UnitsJob {
                scratch: &mut self.scratch,
                task,
            },
        );
        Ok(())
    }

    fn run_gradient_above_first(&mut self, task: AboveFirstTask<'_, T>) -> Result<T, Error> {
        let (task, first_delta, activations, slopes) = task.into_parts();
        let lanes = lanes_of::<T>(self.path);
        let (architecture, rows) = (task.layers().architecture(), task.batch().rows());
        self.scratch.fit(architecture, rows, lanes)?;
        let buffers = &mut self.scratch.buffers;
        let values = if buffers.unpadded() {
            // No padding: the layers above read the given values where they lie.
            Some(FirstLayerValues {
                activations: activations.as_slice(),
                slopes: slopes.as_slice(),
            })
        } else {
            for (given, all) in [
                (activations, &mut buffers.a[0]),
                (slopes, &mut buffers.slopes[0]),
            ] {
                copy_padded(given.as_slice(), given.cols(), all, buffers.stride);
            }
            None
        };
        self.gradient(task, None, First::Given(first_delta, values))
    }
}
