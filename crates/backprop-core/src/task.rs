//! The checked tasks a kernel is handed: layer views, batch rows and output buffers that fit.
//!
//! A task can only be built by checking that its network, batch and buffers
//! fit together (or, for a row part, by cutting a task that was checked), so
//! a kernel reads layer `l`'s weights, the batch's rows and its gradient
//! slices without any `Option`, and a wrapper that splits a batch never
//! checks again what was checked once.

use std::ops::Range;

use crate::{
    Activation, Architecture, Batch, Error, Fork, Inputs, LayerParamsMut, LayerShape, Network,
    Params, Scalar,
    network::{UpdateSource, check_learning_rate, check_loss},
};

/// The largest pre-activation bound a forward pass accepts: a sixteenth of
/// the type's largest value, so that the loss and the output delta, which
/// add and subtract a few such values, stay finite too.
pub(crate) fn overflow_limit<T: Scalar>() -> f64 {
    T::LARGEST / 16.0
}

/// Checks that no pre-activation of `network` can overflow on inputs of
/// magnitude at most `input_bound`, whatever order a backend sums in:
/// `|z^l| <= (d_{l-1} max|a^{l-1}| + 1) max|theta^l|` (with a rounding
/// margin), where `max|a|` is 1 after a sigmoid or tanh layer and the bound
/// of `|z|` after a ReLU or identity one. Uses the network's parameter
/// bounds, and reads a layer's parameters only when its bound is too loose.
fn check_range<T: Scalar>(network: &Network<T>, input_bound: f64) -> Result<(), Error> {
    network.check_finite()?;
    let architecture = network.architecture();
    let limit = overflow_limit::<T>();
    let mut a = input_bound;
    for (l, (shape, &activation)) in architecture
        .layers()
        .iter()
        .zip(architecture.activations())
        .enumerate()
    {
        let reach = |largest: f64| layer_reach::<T>(shape.inputs, a, largest);
        // Written so that a NaN bound (never expected) counts as too large.
        let within = |bound: f64| bound <= limit;
        let mut bound = reach(network.layer_bound(l));
        if !within(bound) {
            bound = reach(network.exact_layer_bound(l));
        }
        if !within(bound) {
            return Err(Error::MayOverflow {
                layer: l,
                bound,
                limit,
            });
        }
        a = next_reach(activation, bound);
    }
    Ok(())
}

/// The bound of a layer's `|z|` from its input width, the bound `a` of its
/// inputs and its largest `|parameter|`, with a margin for rounding.
pub(crate) fn layer_reach<T: Scalar>(inputs: usize, a: f64, largest: f64) -> f64 {
    let inputs = inputs as f64;
    let growth = 1.0 + (inputs + 2.0) * 2.0 * T::UNIT_ROUNDOFF;
    (inputs * a + 1.0) * largest * growth
}

/// The bound of a layer's `|a|` given the bound of its `|z|`.
pub(crate) fn next_reach(activation: Activation, z: f64) -> f64 {
    match activation {
        Activation::Sigmoid | Activation::Tanh => 1.0,
        Activation::Relu | Activation::Identity => z,
    }
}

/// One weight layer of a network, as a kernel reads it.
#[derive(Clone, Copy, Debug)]
pub struct Layer<'a, T> {
    /// Where the layer sits in the flat buffer, and its widths.
    pub shape: LayerShape,
    /// The layer's activation.
    pub activation: Activation,
    /// `W^l`, `outputs x inputs`, row-major.
    pub weights: &'a [T],
    /// `b^l`, `outputs` values.
    pub bias: &'a [T],
}

/// The weight layers of a network, whose parameters always fit its
/// architecture (a [`Network`] cannot be built or changed otherwise).
#[derive(Clone, Copy, Debug)]
pub struct Layers<'a, T> {
    network: &'a Network<T>,
}

impl<'a, T: Scalar> Layers<'a, T> {
    /// The layers of `network`.
    pub fn of(network: &'a Network<T>) -> Self {
        Layers { network }
    }

    /// The network they belong to.
    pub fn network(&self) -> &'a Network<T> {
        self.network
    }

    /// The network's architecture.
    pub fn architecture(&self) -> &'a Architecture {
        self.network.architecture()
    }

    /// The number of weight layers `L` (at least 1).
    pub fn count(&self) -> usize {
        self.architecture().layer_count()
    }

    /// Layer `l` (0-based), or `None` past the last layer.
    pub fn get(&self, l: usize) -> Option<Layer<'a, T>> {
        (l < self.count()).then(|| self.layer(l))
    }

    /// Layer `l` (0-based), as a kernel's loop over the layers reads it.
    ///
    /// # Panics
    ///
    /// If `l` is not below [`Layers::count`], as slice indexing does;
    /// [`Layers::get`] is the checked form.
    pub fn layer(&self, l: usize) -> Layer<'a, T> {
        let architecture = self.architecture();
        let shape = architecture.layers()[l];
        let values = self.network.params().as_slice();
        Layer {
            shape,
            activation: architecture.activations()[l],
            weights: &values[shape.weight_range()],
            bias: &values[shape.bias_range()],
        }
    }

    /// Every layer, input side first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Layer<'a, T>> + ExactSizeIterator {
        let layers = *self;
        (0..self.count()).map(move |l| layers.layer(l))
    }
}

/// A gradient buffer laid out for a task's network, as a kernel writes it.
#[derive(Debug)]
pub struct GradientLayers<'a, T> {
    params: &'a mut Params<T>,
}

impl<T: Scalar> GradientLayers<'_, T> {
    /// Layer `l`'s slices of the buffer, or `None` past the last layer.
    pub fn get_mut(&mut self, l: usize) -> Option<LayerParamsMut<'_, T>> {
        (l < self.params.layer_shapes().len()).then(|| self.layer_mut(l))
    }

    /// Layer `l`'s slices of the buffer, as a kernel's loop over the layers writes them.
    ///
    /// # Panics
    ///
    /// If `l` is not below the layer count, as slice indexing does;
    /// [`GradientLayers::get_mut`] is the checked form.
    pub fn layer_mut(&mut self, l: usize) -> LayerParamsMut<'_, T> {
        let shape = self.params.layer_shapes()[l];
        let (weights, bias) = self.params.as_mut_slice()
            [shape.offset..shape.offset + shape.param_count()]
            .split_at_mut(shape.weight_count());
        LayerParamsMut {
            shape,
            weights,
            bias,
        }
    }

    /// The whole buffer, in the flat layout.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.params.as_mut_slice()
    }

    /// Sets every value to zero.
    pub fn fill_zero(&mut self) {
        self.params.fill_zero();
    }
}

/// A batch's `B` rows cut into `count` contiguous parts whose sizes differ
/// by at most one: part `c` holds rows `c B / count .. (c + 1) B / count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowSplit {
    rows: usize,
    count: usize,
}

impl RowSplit {
    /// `rows` rows in `count` parts, `count` clamped to `1..=rows` so that no
    /// part is empty (for `rows >= 1`).
    pub fn new(rows: usize, count: usize) -> Self {
        RowSplit {
            rows,
            count: count.min(rows).max(1),
        }
    }

    /// The number of parts.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The number of rows split.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The rows of part `c`: `c B / count .. (c + 1) B / count`, computed
    /// without overflow for any `B`; empty at `B` for `c` at or past
    /// [`RowSplit::count`].
    pub fn range(&self, c: usize) -> Range<usize> {
        let c = c.min(self.count);
        let boundary = |c: usize| {
            // At most `rows`, so the conversion back is exact.
            (c as u128 * self.rows as u128 / self.count as u128) as usize
        };
        boundary(c)..boundary((c + 1).min(self.count))
    }

    /// Part `c`'s share `B_c / B` of the rows: its weight in a batch mean.
    pub fn share<T: Scalar>(&self, c: usize) -> T {
        T::from_usize(self.range(c).len()) / T::from_usize(self.rows)
    }

    /// `values`, `width` values a row, cut into the parts' pieces in order
    /// (pieces past the end of a `values` shorter than `rows x width` come
    /// out short or empty).
    pub fn pieces<V>(
        self,
        values: &mut [V],
        width: usize,
    ) -> impl ExactSizeIterator<Item = &mut [V]> {
        let split = self;
        let mut rest = values;
        (0..self.count).map(move |c| {
            let length = split.range(c).len().saturating_mul(width).min(rest.len());
            let (piece, after) = std::mem::take(&mut rest).split_at_mut(length);
            rest = after;
            piece
        })
    }
}

/// A forward pass whose network, inputs and output buffer fit together.
#[derive(Debug)]
pub struct ForwardTask<'a, T> {
    layers: Layers<'a, T>,
    inputs: Inputs<'a, T>,
    outputs: &'a mut [T],
}

impl<'a, T: Scalar> ForwardTask<'a, T> {
    /// Checks that the inputs have the network's input width `n`, that
    /// `outputs` holds `B x m` values, that the network's parameters are
    /// finite, and that no pre-activation can overflow
    /// ([`Error::MayOverflow`] names the layer).
    pub fn new(
        network: &'a Network<T>,
        inputs: Inputs<'a, T>,
        outputs: &'a mut [T],
    ) -> Result<Self, Error> {
        let architecture = network.architecture();
        inputs.check_width(architecture)?;
        check_range(network, inputs.largest_magnitude())?;
        let (rows, cols) = (inputs.rows(), architecture.output_width());
        if rows.checked_mul(cols) != Some(outputs.len()) {
            return Err(Error::MatrixLength {
                rows,
                cols,
                found: outputs.len(),
            });
        }
        Ok(ForwardTask {
            layers: Layers::of(network),
            inputs,
            outputs,
        })
    }

    /// The network's layers.
    pub fn layers(&self) -> Layers<'a, T> {
        self.layers
    }

    /// The inputs `X` (`B x n`).
    pub fn inputs(&self) -> Inputs<'a, T> {
        self.inputs
    }

    /// The same task for a shorter while: lets a wrapper hand it to an inner
    /// kernel and then go on with the outputs that kernel wrote.
    pub fn reborrow(&mut self) -> ForwardTask<'_, T> {
        ForwardTask {
            layers: self.layers,
            inputs: self.inputs,
            outputs: self.outputs,
        }
    }

    /// The layers, the inputs, and the output buffer `B x m` to overwrite
    /// with the output layer's activations `A^L`.
    pub fn into_parts(self) -> (Layers<'a, T>, Inputs<'a, T>, &'a mut [T]) {
        (self.layers, self.inputs, self.outputs)
    }

    /// The task cut into `count` row parts (see [`RowSplit::new`]), each
    /// part's rows of the inputs with the matching rows of the outputs.
    pub fn into_row_parts(self, count: usize) -> impl ExactSizeIterator<Item = ForwardTask<'a, T>> {
        let (layers, inputs) = (self.layers, self.inputs);
        let split = RowSplit::new(inputs.rows(), count);
        let width = layers.architecture().output_width();
        split
            .pieces(self.outputs, width)
            .enumerate()
            .map(move |(c, outputs)| ForwardTask {
                layers,
                inputs: inputs.rows_of(split.range(c)),
                outputs,
            })
    }
}

/// A loss-and-gradient computation whose network, batch and gradient buffer fit together.
#[derive(Debug)]
pub struct GradientTask<'a, T> {
    layers: Layers<'a, T>,
    batch: Batch<'a, T>,
    gradient: &'a mut Params<T>,
}

impl<'a, T: Scalar> GradientTask<'a, T> {
    /// Checks that the batch's widths are the network's `n` and `m`, that
    /// the gradient buffer is laid out for the network, that the network's
    /// parameters are finite and that no pre-activation can overflow
    /// ([`Error::MayOverflow`] names the layer).
    pub fn new(
        network: &'a Network<T>,
        batch: Batch<'a, T>,
        gradient: &'a mut Params<T>,
    ) -> Result<Self, Error> {
        batch.check_widths(network.architecture())?;
        gradient.check_layout(network.architecture())?;
        check_range(network, batch.inputs().largest_magnitude())?;
        Ok(GradientTask {
            layers: Layers::of(network),
            batch,
            gradient,
        })
    }

    /// The network's layers.
    pub fn layers(&self) -> Layers<'a, T> {
        self.layers
    }

    /// The batch.
    pub fn batch(&self) -> Batch<'a, T> {
        self.batch
    }

    /// The same task for a shorter while: lets a wrapper hand it to an inner
    /// kernel and then go on with the gradient that kernel wrote.
    pub fn reborrow(&mut self) -> GradientTask<'_, T> {
        GradientTask {
            layers: self.layers,
            batch: self.batch,
            gradient: self.gradient,
        }
    }

    /// The layers, the batch, and the gradient buffer to overwrite with
    /// `dJ/dtheta` (never reading its old values).
    pub fn into_parts(self) -> (Layers<'a, T>, Batch<'a, T>, GradientLayers<'a, T>) {
        (
            self.layers,
            self.batch,
            GradientLayers {
                params: self.gradient,
            },
        )
    }

    /// The batch cut into `count` row parts (see [`RowSplit::new`]), each a
    /// task of its own once given a gradient buffer.
    pub fn row_parts(&self, count: usize) -> impl ExactSizeIterator<Item = RowPart<'a, T>> {
        row_parts(self.layers, self.batch, count)
    }
}

/// `batch` cut into `count` row parts, none empty.
fn row_parts<'a, T: Scalar>(
    layers: Layers<'a, T>,
    batch: Batch<'a, T>,
    count: usize,
) -> impl ExactSizeIterator<Item = RowPart<'a, T>> {
    let split = RowSplit::new(batch.rows(), count);
    (0..split.count()).map(move |index| RowPart {
        layers,
        batch: batch.rows_of(split.range(index)),
        index,
        split,
    })
}

/// Some rows of a checked task's batch, with its network: a gradient buffer
/// makes them a [`GradientTask`] of their own, without checking again.
#[derive(Clone, Copy, Debug)]
pub struct RowPart<'a, T> {
    layers: Layers<'a, T>,
    batch: Batch<'a, T>,
    index: usize,
    split: RowSplit,
}

impl<'a, T: Scalar> RowPart<'a, T> {
    /// Which part this is, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The part's rows within the whole batch.
    pub fn rows(&self) -> Range<usize> {
        self.split.range(self.index)
    }

    /// The part's share `B_c / B` of the batch's rows.
    pub fn share(&self) -> T {
        self.split.share(self.index)
    }

    /// The part's rows as a batch.
    pub fn batch(&self) -> Batch<'a, T> {
        self.batch
    }

    /// The part as a task writing into `gradient`, which is laid out anew
    /// (zeroed, allocating) only if it is not laid out for the network yet.
    pub fn with_gradient<'b>(self, gradient: &'b mut Params<T>) -> GradientTask<'b, T>
    where
        'a: 'b,
    {
        gradient.fit_layout(self.layers.architecture());
        GradientTask {
            layers: self.layers,
            batch: self.batch,
            gradient,
        }
    }
}

/// One SGD step whose network, batch, gradient buffer and learning rate fit together.
#[derive(Debug)]
pub struct SgdTask<'a, T> {
    network: &'a mut Network<T>,
    batch: Batch<'a, T>,
    gradient: &'a mut Params<T>,
    learning_rate: T,
}

impl<'a, T: Scalar> SgdTask<'a, T> {
    /// Checks what [`GradientTask::new`] checks, and that the learning rate
    /// is finite and non-negative.
    pub fn new(
        network: &'a mut Network<T>,
        batch: Batch<'a, T>,
        gradient: &'a mut Params<T>,
        learning_rate: T,
    ) -> Result<Self, Error> {
        check_learning_rate(learning_rate)?;
        network.check_finite()?;
        // Bounds grown over many steps may be too loose for this batch: make
        // those exact once, rather than read the parameters at every step.
        network.tighten_loose_bounds(batch.inputs().largest_magnitude());
        GradientTask::new(network, batch, gradient)?;
        Ok(SgdTask {
            network,
            batch,
            gradient,
            learning_rate,
        })
    }

    /// The network's layers, before the update.
    pub fn layers(&self) -> Layers<'_, T> {
        Layers::of(self.network)
    }

    /// The learning rate `eta`.
    pub fn learning_rate(&self) -> T {
        self.learning_rate
    }

    /// The batch.
    pub fn batch(&self) -> Batch<'a, T> {
        self.batch
    }

    /// The step's loss-and-gradient part, on the network before the update.
    pub fn gradient_task(&mut self) -> GradientTask<'_, T> {
        GradientTask {
            layers: Layers::of(self.network),
            batch: self.batch,
            gradient: self.gradient,
        }
    }

    /// The batch cut into `count` row parts, as [`GradientTask::row_parts`] cuts it.
    pub fn row_parts(&self, count: usize) -> impl ExactSizeIterator<Item = RowPart<'_, T>> {
        row_parts(Layers::of(self.network), self.batch, count)
    }

    /// Finishes the step whose loss was `loss` and whose gradient is in the
    /// buffer: checks that the gradient and the loss are finite and that
    /// the update `theta <- theta - eta * gradient` keeps every parameter
    /// finite, then applies it and returns the loss. On an error
    /// ([`Error::NonFiniteGradient`], [`Error::NonFiniteLoss`],
    /// [`Error::NonFiniteUpdate`], or [`Error::TooLarge`] for the spare
    /// buffer below) the network is left as it was.
    ///
    /// One read of the gradient gives each layer's largest `|g|`, which with
    /// a bound the network keeps of its parameters proves the update finite
    /// in the common case; it is then written in place, as an unchecked
    /// update would be. When that cannot be proved (a non-finite gradient, or
    /// parameters or steps near the type's largest value), the updated
    /// values are written into a spare buffer (as large as the parameters,
    /// allocated then) and checked one by one, and become the parameters
    /// only if all are finite.
    pub fn apply_update(self, loss: T) -> Result<T, Error> {
        let SgdTask {
            network,
            gradient,
            learning_rate,
            ..
        } = self;
        network.update(gradient.as_slice(), learning_rate, Some(loss), None)?;
        Ok(loss)
    }

    /// [`SgdTask::apply_update`] with its two passes over the parameters,
    /// the proof's read of the gradient and the write of the update, each
    /// cut into up to `pieces` contiguous pieces (of at least
    /// [`MIN_PIECE_VALUES`](crate::MIN_PIECE_VALUES) parameters, at most
    /// [`MAX_PIECES`](crate::MAX_PIECES)) that `fork`
    /// runs, say on the kernel's thread pool, so that each thread reads and
    /// writes the parameters it last touched.
    ///
    /// The core computes every value, the same bits as
    /// [`SgdTask::apply_update`]; the fork only chooses the threads. Items
    /// the fork leaves out are run here after it returns, and each piece of
    /// the write is handed out once, so a fork that skips or repeats items
    /// changes nothing. The fork must not panic while it runs the write's
    /// items, which change the parameters. (A step that cannot be proved
    /// finite is checked value by value by the core, on this thread.)
    pub fn apply_update_on(self, loss: T, pieces: usize, fork: &mut Fork<'_>) -> Result<T, Error> {
        let SgdTask {
            network,
            gradient,
            learning_rate,
            ..
        } = self;
        network.update(
            gradient.as_slice(),
            learning_rate,
            Some(loss),
            Some((pieces, fork)),
        )?;
        Ok(loss)
    }

    /// A step whose kernel writes the update while it forms the gradient
    /// (in the epilogue of the weight-gradient products, say). `kernel`
    /// gets the step's [`GradientTask`], a buffer as long as the parameters
    /// and `step = -eta`; it must leave `dJ/dtheta` in the task's gradient
    /// buffer, as [`Backend::run_loss_and_gradient`] does, write
    /// `params[i] + step * gradient[i]` (with or without a fused
    /// multiply-add) into every `updated[i]`, in the flat layout, and return
    /// the loss.
    ///
    /// `updated` is the network's spare buffer, never its parameters: it
    /// becomes the parameters only when the kernel returned `Ok`, the loss is
    /// finite and every updated value and gradient component is (checked in
    /// one read of `updated` and the gradient).
    /// Otherwise the error is returned as [`SgdTask::apply_update`] names
    /// it, and on any error or panic the network is left as it was.
    ///
    /// [`Backend::run_loss_and_gradient`]: crate::Backend::run_loss_and_gradient
    pub fn run_fused(
        self,
        kernel: impl FnOnce(GradientTask<'_, T>, &mut [T], T) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let SgdTask {
            network,
            batch,
            gradient,
            learning_rate,
        } = self;
        let mut updated = network.take_spare()?;
        let task = GradientTask {
            layers: Layers::of(network),
            batch,
            gradient: &mut *gradient,
        };
        let loss = kernel(task, &mut updated, -learning_rate);
        network.restore_spare(updated);
        let loss = loss?;
        network.stage_update(gradient.as_slice(), learning_rate, UpdateSource::Written)?;
        check_loss(loss)?;
        network.commit_update();
        Ok(loss)
    }
}

#[cfg(test)]
mod tests {
    use super::{ForwardTask, GradientTask, RowSplit};
    use crate::{Activation, Architecture, Batch, Error, Inputs, Loss, MatrixRef, Network, Params};

    /// A network of `widths` and `activations` (MSE) whose every parameter is `value`.
    fn constant(widths: &[usize], activations: &[Activation], value: f32) -> Network<f32> {
        let architecture = Architecture::new(widths, activations, Loss::Mse).expect("valid");
        let params = Params::from_values(&architecture, vec![value; architecture.param_count()])
            .expect("the right length");
        Network::new(architecture, params).expect("finite")
    }

    /// The bound of `|z|` the tasks derive, written out independently:
    /// `(n a + 1) w (1 + (n + 2) 2u)` with `u` the `f32` unit roundoff.
    fn expected_reach(n: usize, a: f64, w: f64) -> f64 {
        let u = f64::from(f32::EPSILON) / 2.0;
        (n as f64 * a + 1.0) * w * (1.0 + (n as f64 + 2.0) * 2.0 * u)
    }

    /// The error of a forward task of `network` on one sample of `x`.
    fn forward_error(network: &Network<f32>, x: &[f32]) -> Option<Error> {
        let inputs = Inputs::new(MatrixRef::new(x, 1, x.len()).expect("1 row")).expect("finite");
        let mut out = vec![0.0; network.architecture().output_width()];
        ForwardTask::new(network, inputs, &mut out).err()
    }

    #[test]
    fn a_layer_that_could_overflow_is_named_with_its_bound_and_the_limit() {
        let limit = f64::from(f32::MAX) / 16.0;
        // One identity layer of 2 inputs: |z| <= (2 * 4 + 1) w (1 + 8u).
        let w = 3e36f32;
        let network = constant(&[2, 1], &[Activation::Identity], w);
        let error = forward_error(&network, &[4.0, -1.0]).expect("past the limit");
        let bound = expected_reach(2, 4.0, f64::from(w));
        assert!(bound > limit);
        assert!(
            matches!(error, Error::MayOverflow { layer: 0, bound: b, limit: l } if b == bound && l == limit),
            "{error:?}"
        );
        // Inputs a tenth as large stay below it.
        assert!(forward_error(&network, &[0.4, -0.1]).is_none());
    }

    #[test]
    fn a_squashing_layer_bounds_the_next_layers_inputs_by_one_and_a_linear_one_does_not() {
        let limit = f64::from(f32::MAX) / 16.0;
        let w = 1e19f32;
        for (activation, layer) in [
            (Activation::Sigmoid, None),
            (Activation::Tanh, None),
            (Activation::Relu, Some(1)),
            (Activation::Identity, Some(1)),
        ] {
            let network = constant(&[3, 2, 1], &[activation, Activation::Identity], w);
            let first = expected_reach(3, 1.0, f64::from(w));
            let second = match activation {
                Activation::Sigmoid | Activation::Tanh => expected_reach(2, 1.0, f64::from(w)),
                _ => expected_reach(2, first, f64::from(w)),
            };
            let error = forward_error(&network, &[1.0, -1.0, 0.5]);
            match layer {
                None => assert!(error.is_none(), "{activation}: {error:?}"),
                Some(l) => assert!(
                    matches!(error, Some(Error::MayOverflow { layer, bound, limit: lim }) if layer == l && bound == second && lim == limit),
                    "{activation}: {error:?}"
                ),
            }
        }
    }

    #[test]
    fn a_forward_task_checks_the_output_buffer_against_b_x_m() {
        let network = constant(&[2, 3], &[Activation::Sigmoid], 0.5);
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let inputs = Inputs::new(MatrixRef::new(&x, 2, 2).expect("2 x 2")).expect("finite");
        let mut out = vec![0.0; 5];
        let error = ForwardTask::new(&network, inputs, &mut out).unwrap_err();
        assert!(
            matches!(
                error,
                Error::MatrixLength {
                    rows: 2,
                    cols: 3,
                    found: 5
                }
            ),
            "{error:?}"
        );
        let mut out = vec![0.0; 6];
        assert!(ForwardTask::new(&network, inputs, &mut out).is_ok());
    }

    #[test]
    fn row_parts_cover_the_batch_in_order_with_their_shares() {
        let network = constant(&[1, 1], &[Activation::Identity], 0.5);
        let x: Vec<f32> = (0..7).map(|i| i as f32).collect();
        let y = vec![0.0f32; 7];
        let batch = Batch::from_slices(network.architecture(), 7, &x, &y).expect("a batch");
        let mut gradient = network.zero_gradient();
        let task = GradientTask::new(&network, batch, &mut gradient).expect("valid");
        let parts: Vec<_> = task.row_parts(3).collect();
        assert_eq!(parts.len(), 3);
        for (c, part) in parts.iter().enumerate() {
            assert_eq!(part.index(), c);
            let rows = part.rows();
            assert_eq!(rows, RowSplit::new(7, 3).range(c));
            assert_eq!(part.batch().rows(), rows.len());
            let first = part.batch().inputs().matrix().as_slice()[0];
            assert_eq!(first, rows.start as f32, "part {c} starts at its first row");
            assert_eq!(part.share(), rows.len() as f32 / 7.0);
        }
        // More parts than rows: one row each.
        assert_eq!(task.row_parts(100).len(), 7);
    }

    #[test]
    fn pieces_follow_the_parts_and_come_out_short_past_the_values() {
        let split = RowSplit::new(5, 2);
        let mut values: Vec<u32> = (0..10).collect();
        let pieces: Vec<Vec<u32>> = split.pieces(&mut values, 2).map(|p| p.to_vec()).collect();
        assert_eq!(pieces, [vec![0, 1, 2, 3], vec![4, 5, 6, 7, 8, 9]]);
        let mut short: Vec<u32> = (0..5).collect();
        let pieces: Vec<Vec<u32>> = split.pieces(&mut short, 2).map(|p| p.to_vec()).collect();
        assert_eq!(pieces, [vec![0, 1, 2, 3], vec![4]]);
        let mut none: Vec<u32> = Vec::new();
        assert!(split.pieces(&mut none, 2).all(|p| p.is_empty()));
    }

    #[test]
    fn layers_and_gradient_layers_have_checked_and_indexing_forms() {
        let network = constant(&[2, 3, 1], &[Activation::Tanh, Activation::Identity], 0.25);
        let layers = super::Layers::of(&network);
        assert_eq!(layers.count(), 2);
        assert!(layers.get(2).is_none());
        let second = layers.get(1).expect("two layers");
        assert_eq!((second.shape.inputs, second.shape.outputs), (3, 1));
        assert_eq!(second.weights.len(), 3);
        assert_eq!(second.bias.len(), 1);
        assert_eq!(second.activation, Activation::Identity);
        assert_eq!(layers.layer(0).weights.len(), 6);
        assert_eq!(layers.iter().len(), 2);
        let mut gradient = network.zero_gradient();
        let x = [1.0f32, 1.0];
        let batch = Batch::from_slices(network.architecture(), 1, &x, &[0.0]).expect("a batch");
        let task = GradientTask::new(&network, batch, &mut gradient).expect("valid");
        let (_, _, mut grads) = task.into_parts();
        assert!(grads.get_mut(2).is_none());
        grads.get_mut(1).expect("two layers").bias[0] = 7.0;
        grads.layer_mut(0).weights[5] = 5.0;
        let values = grads.as_mut_slice();
        assert_eq!(
            values[9 + 3],
            7.0,
            "the second layer's bias follows its 3 weights"
        );
        assert_eq!(values[5], 5.0);
        grads.fill_zero();
        assert!(grads.as_mut_slice().iter().all(|&v| v == 0.0));
    }

    #[test]
    fn a_row_split_cuts_parts_whose_sizes_differ_by_at_most_one() {
        let split = RowSplit::new(10, 4);
        assert_eq!(split.rows(), 10);
        let parts: Vec<_> = (0..split.count()).map(|c| split.range(c)).collect();
        assert_eq!(parts, [0..2, 2..5, 5..7, 7..10]);
        assert_eq!(split.share::<f64>(1), 0.3);
        // Clamped counts: never more parts than rows, never none.
        assert_eq!(RowSplit::new(3, 8).count(), 3);
        assert_eq!(RowSplit::new(3, 0).count(), 1);
        assert_eq!(RowSplit::new(0, 4).range(0), 0..0);
    }

    #[test]
    fn a_row_split_of_any_size_neither_overflows_nor_runs_past_its_rows() {
        let split = RowSplit::new(usize::MAX, 3);
        let third = usize::MAX / 3;
        assert_eq!(split.range(0), 0..third);
        assert_eq!(split.range(1), third..2 * third);
        assert_eq!(split.range(2), 2 * third..usize::MAX);
        // Past the last part: empty, at the end.
        assert_eq!(split.range(3), usize::MAX..usize::MAX);
        assert_eq!(split.range(usize::MAX), usize::MAX..usize::MAX);
        assert_eq!(RowSplit::new(10, 4).range(9), 10..10);
    }
}
