//! Negative controls: deliberately wrong kernels that every check must be able to reject.
//!
//! Two kinds. A [`Flaw`] is a classic mistake inside backpropagation, made
//! by a copy of the reference kernel ([`ControlBackend`]). An [`OutputFlaw`]
//! is applied to the output of any backend ([`Flawed`]), so that an author
//! sees which checks catch each flaw on their own kernel. Running them
//! through the same checks as the real backends proves that the checks can
//! fail: a control that passes every check means the checks are too weak.

use std::fmt;

use backprop_core::{
    Activation, Backend, Batch, Error, ForwardTask, GradientLayers, GradientTask, Layers, Loss,
    Params, Scalar,
};
use backprop_naive::NaiveBackend;

/// One deliberate mistake inside backpropagation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    /// The source derivation's scalar step 1 taken literally: every output's
    /// error term is the sum of all outputs' errors, `1/m sum_i (a_i - y_i)`,
    /// instead of its own `(a_j - y_j)/m`.
    ScalarStepOne,
    /// Hidden deltas without the activation derivative: `delta^{l-1} = delta^l W^l`.
    MissingActivationDerivative,
    /// Each weight gradient written transposed, `A^{l-1}^T delta^l` read as `d_l x d_{l-1}`.
    TransposedWeightGradient,
    /// The bias gradient of the last sample only, not summed over the batch.
    BiasNotSummed,
    /// The slopes formed from the rounded activation, `a (1 - a)` and
    /// `1 - a^2`, and the softmax cross-entropy's `p - y` by subtraction, as
    /// the classic derivation and most frameworks form them: right where
    /// no unit saturates, and losing whole components where one does. The
    /// strict mode must reject it and the allowance
    /// ([`Cancellation::Allowed`](crate::checks::Cancellation)) accept it.
    SlopesFromActivation,
    /// The softmax cross-entropy's `dJ/dz` as `(p - y) / B`, the row sum
    /// `s` of the targets taken as 1: right for one-hot targets and
    /// distributions, wrong for any other targets.
    RowSumTakenAsOne,
    /// The first layer's activation applied in every layer (softmax
    /// cross-entropy's identity outputs aside), in the forward pass and the
    /// gradient alike: right wherever the layers share one activation, so
    /// only cells whose layers differ in activation show it.
    OneActivation,
}

impl Flaw {
    /// Every kernel flaw.
    pub const ALL: [Flaw; 7] = [
        Flaw::ScalarStepOne,
        Flaw::MissingActivationDerivative,
        Flaw::TransposedWeightGradient,
        Flaw::BiasNotSummed,
        Flaw::SlopesFromActivation,
        Flaw::RowSumTakenAsOne,
        Flaw::OneActivation,
    ];

    /// The activation layer `l` applies under this flaw, of `activations`
    /// for `loss`.
    fn activation(self, activations: &[Activation], loss: Loss, l: usize) -> Activation {
        let softmax_output = loss == Loss::SoftmaxCrossEntropy && l + 1 == activations.len();
        match self {
            Flaw::OneActivation if !softmax_output => activations[0],
            _ => activations[l],
        }
    }
}

impl fmt::Display for Flaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flaw::ScalarStepOne => "literal scalar step 1",
            Flaw::MissingActivationDerivative => "missing activation derivative",
            Flaw::TransposedWeightGradient => "transposed weight gradient",
            Flaw::BiasNotSummed => "bias gradient not summed",
            Flaw::SlopesFromActivation => "slopes from the rounded activation",
            Flaw::RowSumTakenAsOne => "softmax targets' sum taken as 1",
            Flaw::OneActivation => "first activation in every layer",
        })
    }
}

/// One deliberate mistake applied to what any backend returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OutputFlaw {
    /// The whole gradient times `1 + e`.
    ScaledGradient(f64),
    /// The largest gradient component times `1 + e`.
    ComponentOff(f64),
    /// The last layer's bias gradient left out (zero).
    BiasGradientDropped,
    /// The forward outputs with their rows in reverse order; the gradient right.
    ForwardRowsPermuted,
    /// The loss and the gradient both times a factor: consistent with each
    /// other, so invisible to every gradient oracle. A factor of 2 is a loss
    /// of `1/(m B)` instead of `1/(2 m B)`.
    ConsistentlyScaled(f64),
    /// The loss and the gradient of the last call given again whenever the
    /// parameters and the batch lie where they lay then, whatever they hold
    /// now: a cache known by address, stale once the values change in place.
    KeptByAddress,
}

impl OutputFlaw {
    /// The flaws a kernel's own controls apply, with `e` the relative error
    /// of the scaled gradient and of the component off.
    pub fn all(e: f64) -> [OutputFlaw; 6] {
        [
            OutputFlaw::ScaledGradient(e),
            OutputFlaw::ComponentOff(e),
            OutputFlaw::BiasGradientDropped,
            OutputFlaw::ForwardRowsPermuted,
            OutputFlaw::ConsistentlyScaled(2.0),
            OutputFlaw::KeptByAddress,
        ]
    }
}

impl fmt::Display for OutputFlaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputFlaw::ScaledGradient(e) => write!(f, "gradient scaled by 1 + {e:.0e}"),
            OutputFlaw::ComponentOff(e) => write!(f, "largest component off by {e:.0e}"),
            OutputFlaw::BiasGradientDropped => f.write_str("last bias gradient dropped"),
            OutputFlaw::ForwardRowsPermuted => f.write_str("forward rows permuted"),
            OutputFlaw::ConsistentlyScaled(factor) if *factor == 2.0 => {
                f.write_str("loss 1/m instead of 1/(2m)")
            }
            OutputFlaw::ConsistentlyScaled(factor) => {
                write!(f, "loss and gradient scaled by {factor}")
            }
            OutputFlaw::KeptByAddress => f.write_str("answer kept by address"),
        }
    }
}

/// A backend `B` whose outputs carry one [`OutputFlaw`]. Its SGD step is the
/// trait's default, so the flaw flows into the update too.
#[derive(Debug)]
pub struct Flawed<B> {
    inner: B,
    flaw: OutputFlaw,
    /// For [`OutputFlaw::KeptByAddress`]: the last answer, by where the
    /// parameters, inputs and targets lay.
    kept: Option<KeptAnswer>,
}

/// A loss and gradient, widened to `f64` (which holds both precisions
/// exactly), and the addresses of the parameters, inputs and targets they
/// were computed from.
#[derive(Debug)]
struct KeptAnswer {
    addresses: [usize; 3],
    loss: f64,
    gradient: Vec<f64>,
}

impl<B> Flawed<B> {
    /// `inner` with `flaw` applied to its outputs.
    pub fn new(inner: B, flaw: OutputFlaw) -> Self {
        Flawed {
            inner,
            flaw,
            kept: None,
        }
    }
}

impl<T: Scalar, B: Backend<T>> Backend<T> for Flawed<B> {
    fn name(&self) -> &'static str {
        "flawed"
    }

    fn run_forward(&mut self, mut task: ForwardTask<'_, T>) -> Result<(), Error> {
        self.inner.run_forward(task.reborrow())?;
        if self.flaw == OutputFlaw::ForwardRowsPermuted {
            let m = task.layers().architecture().output_width();
            let (_, _, outputs) = task.into_parts();
            let rows = outputs.len() / m;
            for r in 0..rows / 2 {
                let (front, back) = outputs.split_at_mut((rows - 1 - r) * m);
                front[r * m..(r + 1) * m].swap_with_slice(&mut back[..m]);
            }
        }
        Ok(())
    }

    fn run_loss_and_gradient(&mut self, mut task: GradientTask<'_, T>) -> Result<T, Error> {
        let (layers, batch) = (task.layers(), task.batch());
        let addresses = [
            layers.network().params().as_slice().as_ptr() as usize,
            batch.inputs().matrix().as_slice().as_ptr() as usize,
            batch.targets().as_slice().as_ptr() as usize,
        ];
        if self.flaw == OutputFlaw::KeptByAddress
            && let Some(kept) = self.kept.as_ref().filter(|k| k.addresses == addresses)
        {
            let (_, _, mut gradient) = task.into_parts();
            for (value, &old) in gradient.as_mut_slice().iter_mut().zip(&kept.gradient) {
                *value = T::from_f64(old);
            }
            return Ok(T::from_f64(kept.loss));
        }
        let loss = self.inner.run_loss_and_gradient(task.reborrow())?;
        let count = task.layers().count();
        let (_, _, mut gradient) = task.into_parts();
        let values = gradient.as_mut_slice();
        Ok(match self.flaw {
            OutputFlaw::ScaledGradient(e) => {
                scale(values, T::from_f64(1.0 + e));
                loss
            }
            OutputFlaw::ComponentOff(e) => {
                let largest = (0..values.len()).fold(0, |best, i| {
                    if values[i].abs() > values[best].abs() {
                        i
                    } else {
                        best
                    }
                });
                if let Some(value) = values.get_mut(largest) {
                    *value *= T::from_f64(1.0 + e);
                }
                loss
            }
            OutputFlaw::BiasGradientDropped => {
                gradient.layer_mut(count - 1).bias.fill(T::ZERO);
                loss
            }
            OutputFlaw::ForwardRowsPermuted => loss,
            OutputFlaw::ConsistentlyScaled(factor) => {
                scale(values, T::from_f64(factor));
                loss * T::from_f64(factor)
            }
            OutputFlaw::KeptByAddress => {
                self.kept = Some(KeptAnswer {
                    addresses,
                    loss: loss.to_f64(),
                    gradient: values.iter().map(|v| v.to_f64()).collect(),
                });
                loss
            }
        })
    }
}

/// One negative control of the built-in set: a kernel flaw in a copy of the
/// reference, or an output flaw on the reference itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Control {
    /// A [`Flaw`] inside backpropagation.
    Kernel(Flaw),
    /// An [`OutputFlaw`] on the naive backend.
    Output(OutputFlaw),
}

impl Control {
    /// The built-in controls: every kernel flaw, and every output flaw with
    /// the relative error `e`.
    pub fn all(e: f64) -> Vec<Control> {
        let kernel = Flaw::ALL.into_iter().map(Control::Kernel);
        kernel
            .chain(OutputFlaw::all(e).into_iter().map(Control::Output))
            .collect()
    }

    /// The control as a backend.
    pub fn backend<T: Scalar>(self) -> Box<dyn Backend<T>> {
        match self {
            Control::Kernel(flaw) => Box::new(ControlBackend::new(flaw)),
            Control::Output(flaw) => Box::new(Flawed::new(NaiveBackend::new(), flaw)),
        }
    }
}

impl fmt::Display for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Control::Kernel(flaw) => flaw.fmt(f),
            Control::Output(flaw) => flaw.fmt(f),
        }
    }
}

/// A backend that makes exactly one [`Flaw`].
#[derive(Debug)]
pub struct ControlBackend<T> {
    flaw: Flaw,
    naive: NaiveBackend<T>,
    last_sample: Option<Params<T>>,
}

impl<T: Scalar> ControlBackend<T> {
    /// A control making `flaw`.
    pub fn new(flaw: Flaw) -> Self {
        ControlBackend {
            flaw,
            naive: NaiveBackend::new(),
            last_sample: None,
        }
    }
}

impl<T: Scalar> Backend<T> for ControlBackend<T> {
    fn name(&self) -> &'static str {
        "control"
    }

    fn run_forward(&mut self, task: ForwardTask<'_, T>) -> Result<(), Error> {
        if self.flaw != Flaw::OneActivation {
            return self.naive.run_forward(task);
        }
        let (layers, inputs, outputs) = task.into_parts();
        let (_, mut outs) = flawed_forward(self.flaw, layers, inputs.matrix().as_slice());
        if let Some(last) = outs.pop() {
            outputs.copy_from_slice(&last);
        }
        Ok(())
    }

    fn run_loss_and_gradient(&mut self, task: GradientTask<'_, T>) -> Result<T, Error> {
        let (layers, batch) = (task.layers(), task.batch());
        let naive = &mut self.naive;
        // The flaws inside the recursion need their own backpropagation; the
        // others post-process the naive backend's right answer.
        Ok(match self.flaw {
            Flaw::ScalarStepOne
            | Flaw::MissingActivationDerivative
            | Flaw::SlopesFromActivation
            | Flaw::RowSumTakenAsOne
            | Flaw::OneActivation => {
                let (_, _, mut gradient) = task.into_parts();
                flawed_backprop(self.flaw, layers, &batch, &mut gradient)
            }
            Flaw::TransposedWeightGradient => {
                let (loss, mut gradient) = right_answer(naive, task)?;
                for l in 0..layers.count() {
                    let layer = gradient.layer_mut(l);
                    let right = layer.weights.to_vec();
                    let (outputs, inputs) = (layer.shape.outputs, layer.shape.inputs);
                    for (index, weight) in layer.weights.iter_mut().enumerate() {
                        // Row-major `inputs x outputs` read as `outputs x inputs`.
                        let (k, j) = (index / outputs, index % outputs);
                        *weight = right[j * inputs + k];
                    }
                }
                loss
            }
            Flaw::BiasNotSummed => {
                let last_row = task.row_parts(batch.rows()).last();
                let (loss, mut gradient) = right_answer(naive, task)?;
                // The last sample's own gradient, its bias part scaled as one of B.
                let sample = self
                    .last_sample
                    .get_or_insert_with(|| layers.network().zero_gradient());
                if let Some(part) = last_row {
                    naive.run_loss_and_gradient(part.with_gradient(sample))?;
                }
                let inverse_batch = T::ONE / T::from_usize(batch.rows());
                for (l, shape) in layers.architecture().layers().iter().enumerate() {
                    let bias = &sample.as_slice()[shape.bias_range()];
                    for (flawed, &b) in gradient.layer_mut(l).bias.iter_mut().zip(bias) {
                        *flawed = b * inverse_batch;
                    }
                }
                loss
            }
        })
    }
}

/// The naive backend's loss and gradient for `task`, and the gradient to post-process.
fn right_answer<'a, T: Scalar>(
    naive: &mut NaiveBackend<T>,
    mut task: GradientTask<'a, T>,
) -> Result<(T, GradientLayers<'a, T>), Error> {
    let loss = naive.run_loss_and_gradient(task.reborrow())?;
    let (_, _, gradient) = task.into_parts();
    Ok((loss, gradient))
}

/// Multiplies every value by `factor`.
fn scale<T: Scalar>(values: &mut [T], factor: T) {
    for value in values {
        *value *= factor;
    }
}

/// The forward pass over whole-batch matrices of `inputs` (`rows x n`),
/// each layer's activation as `flaw` has it: the pre-activations `zs[l]`
/// and the activations `outs[l + 1]` (`rows x d_{l+1}`), `outs[0]` the
/// inputs.
fn flawed_forward<T: Scalar>(
    flaw: Flaw,
    layers: Layers<'_, T>,
    inputs: &[T],
) -> (Vec<Vec<T>>, Vec<Vec<T>>) {
    let architecture = layers.architecture();
    let (activations, loss) = (architecture.activations(), architecture.loss());
    let rows = inputs.len() / architecture.input_width().max(1);
    let mut outs: Vec<Vec<T>> = vec![inputs.to_vec()];
    let mut zs: Vec<Vec<T>> = Vec::new();
    for (l, layer) in layers.iter().enumerate() {
        let activation = flaw.activation(activations, loss, l);
        let (fan_in, fan_out) = (layer.shape.inputs, layer.shape.outputs);
        let input = &outs[l];
        let z: Vec<T> = (0..rows * fan_out)
            .map(|index| {
                let (b, j) = (index / fan_out, index % fan_out);
                (0..fan_in).fold(layer.bias[j], |sum, k| {
                    sum + layer.weights[j * fan_in + k] * input[b * fan_in + k]
                })
            })
            .collect();
        outs.push(z.iter().map(|&z| activation.value(z)).collect());
        zs.push(z);
    }
    (zs, outs)
}

/// Backpropagation over whole-batch matrices with one of the flaws that
/// live inside the recursion.
fn flawed_backprop<T: Scalar>(
    flaw: Flaw,
    layers: Layers<'_, T>,
    batch: &Batch<'_, T>,
    gradient: &mut GradientLayers<'_, T>,
) -> T {
    let architecture = layers.architecture();
    let rows = batch.rows();
    let inverse_batch = T::ONE / T::from_usize(rows);
    let (zs, outs) = flawed_forward(flaw, layers, batch.inputs().matrix().as_slice());
    let loss = architecture.loss();
    let activation = |l: usize| flaw.activation(architecture.activations(), loss, l);
    let last = architecture.layer_count() - 1;
    let m = architecture.output_width();
    let slope = |l: usize, index: usize| match flaw {
        Flaw::SlopesFromActivation => slope_from_activation(activation(l), outs[l + 1][index]),
        _ => activation(l).slope(zs[l][index]),
    };
    let mut loss_sum = T::ZERO;
    let mut delta = vec![T::ZERO; rows * m];
    for b in 0..rows {
        let (a, y) = (
            &outs[last + 1][b * m..(b + 1) * m],
            &batch.targets().as_slice()[b * m..(b + 1) * m],
        );
        // The rows have the output width, so the lengths agree.
        loss_sum += loss.sample_value(a, y).unwrap_or(T::from_f64(f64::NAN));
        let row = &mut delta[b * m..(b + 1) * m];
        match (flaw, loss) {
            (Flaw::SlopesFromActivation, Loss::SoftmaxCrossEntropy) => {
                let mass: T = y.iter().copied().sum();
                softmax_minus_targets(a, y, mass, inverse_batch, row);
            }
            (Flaw::RowSumTakenAsOne, Loss::SoftmaxCrossEntropy) => {
                softmax_minus_targets(a, y, T::ONE, inverse_batch, row);
            }
            _ => {
                let _ = loss.output_gradient(a, y, inverse_batch, row);
            }
        }
        if flaw == Flaw::ScalarStepOne {
            // Every output's dJ/da replaced by their sum.
            let summed: T = row.iter().copied().sum();
            row.fill(summed);
        }
        for (i, d) in row.iter_mut().enumerate() {
            *d *= slope(last, b * m + i);
        }
    }
    for l in (0..=last).rev() {
        let layer = layers.layer(l);
        let (fan_in, fan_out) = (layer.shape.inputs, layer.shape.outputs);
        let input = &outs[l];
        let grad = gradient.layer_mut(l);
        for j in 0..fan_out {
            grad.bias[j] = (0..rows).map(|b| delta[b * fan_out + j]).sum();
            for k in 0..fan_in {
                grad.weights[j * fan_in + k] = (0..rows)
                    .map(|b| delta[b * fan_out + j] * input[b * fan_in + k])
                    .sum();
            }
        }
        if l > 0 {
            delta = (0..rows * fan_in)
                .map(|index| {
                    let (b, k) = (index / fan_in, index % fan_in);
                    let back: T = (0..fan_out)
                        .map(|j| delta[b * fan_out + j] * layer.weights[j * fan_in + k])
                        .sum();
                    match flaw {
                        Flaw::MissingActivationDerivative => back,
                        _ => back * slope(l - 1, index),
                    }
                })
                .collect();
        }
    }
    loss_sum / T::from_usize(rows)
}

/// `act'` formed from the rounded activation `a`, as the classic derivation
/// writes it: `a (1 - a)` and `1 - a^2`, which cancel to 0 where `a` rounds
/// to 1 (ReLU and identity have no such form, and no such flaw).
fn slope_from_activation<T: Scalar>(activation: Activation, a: T) -> T {
    match activation {
        Activation::Sigmoid => a * (T::ONE - a),
        Activation::Tanh => T::ONE - a * a,
        Activation::Relu => activation.slope(a),
        Activation::Identity => T::ONE,
    }
}

/// The softmax cross-entropy's `dJ/dz = (p s - y) / B` by subtraction, as
/// most frameworks form it, with `mass` for the targets' row sum `s`: where
/// a logit dominates, `p` rounds to 1 and its one-hot target's component to
/// 0.
fn softmax_minus_targets<T: Scalar>(z: &[T], y: &[T], mass: T, inverse_batch: T, out: &mut [T]) {
    let max = z.iter().copied().fold(z[0], T::max);
    let sum: T = z.iter().map(|&z| (z - max).exp()).sum();
    let log_normaliser = max + sum.ln();
    for ((d, &z), &y) in out.iter_mut().zip(z).zip(y) {
        *d = ((z - log_normaliser).exp() * mass - y) * inverse_batch;
    }
}
