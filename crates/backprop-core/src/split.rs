//! The optional first-layer splits a multi-threaded wrapper asks of its inner
//! kernels, their checked tasks, and their forwarding through `Box` and `&mut`.
//!
//! The first layer of a wide network holds most of its weights (98.6% on
//! 784-256-10). [`FirstLayerSplit`] lets a wrapper form that layer's weight
//! gradient over the whole batch, one block of hidden units per thread;
//! [`FirstLayerUnits`] lets it run that layer's forward pass the same way,
//! so that no thread reads the first-layer weights of another.

use std::ops::Range;

use crate::{Backend, Error, GradientTask, Inputs, Layers, MatrixRef, Scalar};

/// What a backend offers a batch-parallel wrapper that forms the first
/// layer's weight gradient `dJ/dW^1 = delta^1^T X` itself, over the whole
/// batch and split by hidden units, instead of summing one whole gradient
/// per row partition.
///
/// An optional capability: a wrapper that uses it asks for it in its type
/// (see `RayonBackend::splitting_first_layer` in `backprop-rayon`), so it
/// knows at construction, not per step, whether its inner kernels offer it.
pub trait FirstLayerSplit<T: Scalar>: Backend<T> {
    /// Like [`Backend::run_loss_and_gradient`], except that the first layer's
    /// weights are left out of the gradient (that part of the buffer is not
    /// written) and `delta^1 = dJ/dZ^1` of the task's rows is written into
    /// the task's first-layer delta (`B x d_1`, row-major) instead.
    fn run_gradient_but_first_weights(
        &mut self,
        task: SplitGradientTask<'_, T>,
    ) -> Result<T, Error>;

    /// Writes the rows `units` of `delta^T X` into the task's output
    /// (`units.len() x n`, row-major), where `delta` is `B x d_1` or
    /// `d_1 x B`, as the task's [`DeltaLayout`] says, and `X` is `B x n`:
    /// the first layer's weight gradient of those hidden units, when `delta`
    /// is `delta^1` over the whole batch. The task is lent, so that the
    /// caller can go on with the output (say, to update the weights).
    fn run_first_weight_rows(&mut self, task: &mut FirstWeightRowsTask<'_, T>);
}

/// What a backend offers a wrapper that splits the first layer by hidden
/// units in the forward pass as well: each thread forms the activations of
/// its block of hidden units over the whole batch
/// ([`FirstLayerUnits::run_first_layer_units`]), one thread runs the layers
/// above on the whole batch ([`FirstLayerUnits::run_gradient_above_first`]),
/// and each thread then forms its block's rows of the first layer's weight
/// gradient ([`FirstLayerSplit::run_first_weight_rows`], with `delta^1` by
/// unit). No thread reads another's rows of `W^1`, and no gradient is
/// combined.
///
/// An optional capability, asked for in the wrapper's type like
/// [`FirstLayerSplit`] (see `RayonBackend::first_layer_by_units` in
/// `backprop-rayon`).
pub trait FirstLayerUnits<T: Scalar>: FirstLayerSplit<T> {
    /// Writes the task's block of hidden units' rows of the first layer's
    /// activations `A^1^T` and of their slopes `act_1'(Z^1)^T` over the
    /// task's batch: one hidden unit per row, `units.len() x B`, row-major.
    /// An error only if the backend cannot make room for its scratch.
    fn run_first_layer_units(&mut self, task: FirstUnitsTask<'_, T>) -> Result<(), Error>;

    /// Like [`FirstLayerSplit::run_gradient_but_first_weights`], with the
    /// first layer's activations and slopes over the whole batch taken from
    /// the task (`d_1 x B`, one hidden unit per row, as
    /// [`FirstLayerUnits::run_first_layer_units`] writes them) instead of
    /// computed from the inputs, and `delta^1` written in their layout too:
    /// one hidden unit per row, `d_1 x B` ([`DeltaLayout::ByUnit`]).
    fn run_gradient_above_first(&mut self, task: AboveFirstTask<'_, T>) -> Result<T, Error>;
}

/// How a first layer's `delta^1` over a batch of `B` rows lies in its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeltaLayout {
    /// One sample per row, `B x d_1`, row-major: what
    /// [`FirstLayerSplit::run_gradient_but_first_weights`] writes.
    BySample,
    /// One hidden unit per row, `d_1 x B`, row-major: what
    /// [`FirstLayerUnits::run_gradient_above_first`] writes.
    ByUnit,
}

impl DeltaLayout {
    /// `values` as a `delta^1` of `rows` samples and `hidden` units in this
    /// layout: `rows x hidden` by sample, `hidden x rows` by unit; an error
    /// as [`MatrixRef::new`] gives one if they do not fit.
    pub fn matrix<T>(
        self,
        values: &[T],
        rows: usize,
        hidden: usize,
    ) -> Result<MatrixRef<'_, T>, Error> {
        match self {
            DeltaLayout::BySample => MatrixRef::new(values, rows, hidden),
            DeltaLayout::ByUnit => MatrixRef::new(values, hidden, rows),
        }
    }

    /// The hidden units of a `delta` laid out this way.
    fn hidden_units<T>(self, delta: MatrixRef<'_, T>) -> usize {
        match self {
            DeltaLayout::BySample => delta.cols(),
            DeltaLayout::ByUnit => delta.rows(),
        }
    }
}

/// A [`GradientTask`] that stops at `delta^1`, with a buffer of `B x d_1`
/// values for it.
#[derive(Debug)]
pub struct SplitGradientTask<'a, T> {
    task: GradientTask<'a, T>,
    first_delta: &'a mut [T],
}

impl<'a, T: Scalar> SplitGradientTask<'a, T> {
    /// Checks that `first_delta` holds `B x d_1` values for the task's batch.
    pub fn new(task: GradientTask<'a, T>, first_delta: &'a mut [T]) -> Result<Self, Error> {
        let hidden = task.layers().layer(0).shape.outputs;
        let expected = task.batch().rows().checked_mul(hidden);
        split_size(
            "first delta length",
            expected.unwrap_or(usize::MAX),
            first_delta.len(),
        )?;
        Ok(SplitGradientTask { task, first_delta })
    }

    /// The same task for a shorter while, as [`GradientTask::reborrow`]: lets
    /// a wrapper hand it to an inner kernel and then go on with what that
    /// kernel wrote.
    pub fn reborrow(&mut self) -> SplitGradientTask<'_, T> {
        SplitGradientTask {
            task: self.task.reborrow(),
            first_delta: self.first_delta,
        }
    }

    /// The gradient task, and the buffer for `delta^1` (`B x d_1` values,
    /// laid out as the method the task is given to says).
    pub fn into_parts(self) -> (GradientTask<'a, T>, &'a mut [T]) {
        (self.task, self.first_delta)
    }
}

/// The pieces of a block of rows of `delta^T X`, whose sizes fit together.
#[derive(Debug)]
pub struct FirstWeightRowsTask<'a, T> {
    delta: MatrixRef<'a, T>,
    layout: DeltaLayout,
    inputs: MatrixRef<'a, T>,
    units: Range<usize>,
    out: &'a mut [T],
}

impl<'a, T: Scalar> FirstWeightRowsTask<'a, T> {
    /// For a `delta` with one sample per row ([`DeltaLayout::BySample`]):
    /// checks that `delta` and `inputs` have the same rows, that `units` lies
    /// within `delta`'s columns and that `out` holds `units.len() x n` values.
    pub fn new(
        delta: MatrixRef<'a, T>,
        inputs: MatrixRef<'a, T>,
        units: Range<usize>,
        out: &'a mut [T],
    ) -> Result<Self, Error> {
        Self::with_layout(DeltaLayout::BySample, delta, inputs, units, out)
    }

    /// For a `delta` with one hidden unit per row ([`DeltaLayout::ByUnit`]):
    /// checks that `delta`'s columns are `inputs`' rows, that `units` lies
    /// within `delta`'s rows and that `out` holds `units.len() x n` values.
    pub fn by_unit(
        delta: MatrixRef<'a, T>,
        inputs: MatrixRef<'a, T>,
        units: Range<usize>,
        out: &'a mut [T],
    ) -> Result<Self, Error> {
        Self::with_layout(DeltaLayout::ByUnit, delta, inputs, units, out)
    }

    /// For a `delta` in `layout`: [`FirstWeightRowsTask::new`] or
    /// [`FirstWeightRowsTask::by_unit`], as `layout` says.
    pub fn with_layout(
        layout: DeltaLayout,
        delta: MatrixRef<'a, T>,
        inputs: MatrixRef<'a, T>,
        units: Range<usize>,
        out: &'a mut [T],
    ) -> Result<Self, Error> {
        let samples = match layout {
            DeltaLayout::BySample => ("delta rows", delta.rows()),
            DeltaLayout::ByUnit => ("delta columns", delta.cols()),
        };
        split_size(samples.0, inputs.rows(), samples.1)?;
        check_units(&units, layout.hidden_units(delta))?;
        let expected = units.len().checked_mul(inputs.cols());
        split_size("output length", expected.unwrap_or(usize::MAX), out.len())?;
        Ok(FirstWeightRowsTask {
            delta,
            layout,
            inputs,
            units,
            out,
        })
    }

    /// `d_1`, the hidden units `delta` has, whichever its layout.
    pub fn hidden(&self) -> usize {
        self.layout.hidden_units(self.delta)
    }

    /// `delta`: `B x d_1` or `d_1 x B`, as [`FirstWeightRowsTask::layout`] says.
    pub fn delta(&self) -> MatrixRef<'a, T> {
        self.delta
    }

    /// How `delta` is laid out.
    pub fn layout(&self) -> DeltaLayout {
        self.layout
    }

    /// The inputs `X`, `B x n`.
    pub fn inputs(&self) -> MatrixRef<'a, T> {
        self.inputs
    }

    /// The hidden units whose rows are wanted.
    pub fn units(&self) -> Range<usize> {
        self.units.clone()
    }

    /// The output, `units.len() x n`, row-major.
    pub fn output(&self) -> &[T] {
        self.out
    }

    /// The output, to overwrite.
    pub fn output_mut(&mut self) -> &mut [T] {
        self.out
    }
}

/// A block of hidden units of the first layer's forward pass: the inputs,
/// the network, and room for the block's activations and slopes.
#[derive(Debug)]
pub struct FirstUnitsTask<'a, T> {
    layers: Layers<'a, T>,
    inputs: Inputs<'a, T>,
    units: Range<usize>,
    activations: &'a mut [T],
    slopes: &'a mut [T],
}

impl<'a, T: Scalar> FirstUnitsTask<'a, T> {
    /// Checks that `inputs` are `n` wide, that `units` lies within the first
    /// layer's `d_1` hidden units, and that `activations` and `slopes` each
    /// hold `units.len() x B` values.
    pub fn new(
        layers: Layers<'a, T>,
        inputs: Inputs<'a, T>,
        units: Range<usize>,
        activations: &'a mut [T],
        slopes: &'a mut [T],
    ) -> Result<Self, Error> {
        inputs.check_width(layers.architecture())?;
        check_units(&units, layers.layer(0).shape.outputs)?;
        let expected = units.len().saturating_mul(inputs.rows());
        split_size("activations length", expected, activations.len())?;
        split_size("slopes length", expected, slopes.len())?;
        Ok(FirstUnitsTask {
            layers,
            inputs,
            units,
            activations,
            slopes,
        })
    }

    /// The network's layers (the block's rows of `W^1` and `b^1` among them).
    pub fn layers(&self) -> Layers<'a, T> {
        self.layers
    }

    /// The inputs `X`, `B x n`.
    pub fn inputs(&self) -> Inputs<'a, T> {
        self.inputs
    }

    /// The block of hidden units.
    pub fn units(&self) -> Range<usize> {
        self.units.clone()
    }

    /// Room for the block's activations and slopes, each `units.len() x B`.
    pub fn outputs_mut(&mut self) -> (&mut [T], &mut [T]) {
        (self.activations, self.slopes)
    }

    /// The same task for a shorter while, as [`GradientTask::reborrow`]: lets
    /// a wrapper hand it to an inner kernel and then go on with the block
    /// that kernel wrote.
    pub fn reborrow(&mut self) -> FirstUnitsTask<'_, T> {
        FirstUnitsTask {
            layers: self.layers,
            inputs: self.inputs,
            units: self.units.clone(),
            activations: self.activations,
            slopes: self.slopes,
        }
    }
}

/// A [`SplitGradientTask`] whose first layer's activations and slopes over
/// the whole batch are given.
#[derive(Debug)]
pub struct AboveFirstTask<'a, T> {
    split: SplitGradientTask<'a, T>,
    activations: MatrixRef<'a, T>,
    slopes: MatrixRef<'a, T>,
}

impl<'a, T: Scalar> AboveFirstTask<'a, T> {
    /// Checks that `activations` and `slopes` each hold `d_1 x B` values
    /// for the task's batch.
    pub fn new(
        split: SplitGradientTask<'a, T>,
        activations: &'a [T],
        slopes: &'a [T],
    ) -> Result<Self, Error> {
        let hidden = split.task.layers().layer(0).shape.outputs;
        let rows = split.task.batch().rows();
        let expected = hidden.saturating_mul(rows);
        split_size("activations length", expected, activations.len())?;
        split_size("slopes length", expected, slopes.len())?;
        Ok(AboveFirstTask {
            activations: MatrixRef::new(activations, hidden, rows)?,
            slopes: MatrixRef::new(slopes, hidden, rows)?,
            split,
        })
    }

    /// The same task for a shorter while, as [`GradientTask::reborrow`]: lets
    /// a wrapper hand it to an inner kernel and then go on with what that
    /// kernel wrote.
    pub fn reborrow(&mut self) -> AboveFirstTask<'_, T> {
        AboveFirstTask {
            split: self.split.reborrow(),
            activations: self.activations,
            slopes: self.slopes,
        }
    }

    /// The gradient task, the buffer for `delta^1` (`d_1 x B`, one hidden
    /// unit per row), and the first layer's activations and slopes (each
    /// `d_1 x B`).
    #[allow(clippy::type_complexity)]
    pub fn into_parts(
        self,
    ) -> (
        GradientTask<'a, T>,
        &'a mut [T],
        MatrixRef<'a, T>,
        MatrixRef<'a, T>,
    ) {
        let (task, first_delta) = self.split.into_parts();
        (task, first_delta, self.activations, self.slopes)
    }
}

/// `Ok` if `found == expected`, else their mismatch.
fn split_size(what: &'static str, expected: usize, found: usize) -> Result<(), Error> {
    if found == expected {
        Ok(())
    } else {
        Err(mismatch(what, expected, found))
    }
}

/// `Ok` if `units` is a range within `0..hidden`.
fn check_units(units: &Range<usize>, hidden: usize) -> Result<(), Error> {
    if units.start > units.end {
        return Err(mismatch("start of the units", units.end, units.start));
    }
    if units.end > hidden {
        return Err(mismatch("end of the units", hidden, units.end));
    }
    Ok(())
}

/// The error of a split piece `what` of size `found` where `expected` was needed.
fn mismatch(what: &'static str, expected: usize, found: usize) -> Error {
    Error::SplitMismatch {
        what,
        expected,
        found,
    }
}

/// Forwards the split methods of a backend it points to.
macro_rules! forward_split {
    ($($pointer:ty),*) => {$(
        impl<T: Scalar, B: FirstLayerSplit<T> + ?Sized> FirstLayerSplit<T> for $pointer {
            fn run_gradient_but_first_weights(
                &mut self,
                task: SplitGradientTask<'_, T>,
            ) -> Result<T, Error> {
                (**self).run_gradient_but_first_weights(task)
            }

            fn run_first_weight_rows(&mut self, task: &mut FirstWeightRowsTask<'_, T>) {
                (**self).run_first_weight_rows(task)
            }
        }

        impl<T: Scalar, B: FirstLayerUnits<T> + ?Sized> FirstLayerUnits<T> for $pointer {
            fn run_first_layer_units(&mut self, task: FirstUnitsTask<'_, T>) -> Result<(), Error> {
                (**self).run_first_layer_units(task)
            }

            fn run_gradient_above_first(&mut self, task: AboveFirstTask<'_, T>) -> Result<T, Error> {
                (**self).run_gradient_above_first(task)
            }
        }
    )*};
}

forward_split!(Box<B>, &mut B);

#[cfg(test)]
mod tests {
    use super::{
        AboveFirstTask, DeltaLayout, FirstUnitsTask, FirstWeightRowsTask, SplitGradientTask,
    };
    use crate::{
        Architecture, Batch, Error, GradientTask, Inputs, Layers, MatrixRef, MatrixRole, Network,
    };

    fn split(what: &'static str, expected: usize, found: usize) -> Error {
        Error::SplitMismatch {
            what,
            expected,
            found,
        }
    }

    #[test]
    fn the_pieces_of_a_block_of_first_weight_rows_must_fit() {
        let (delta, inputs) = ([0.0f32; 6], [0.0f32; 8]);
        // delta: B x d_1 = 2 x 3; inputs: B x n = 2 x 4.
        let delta = MatrixRef::new(&delta, 2, 3).expect("2 x 3");
        let inputs = MatrixRef::new(&inputs, 2, 4).expect("2 x 4");
        let mut out = [0.0f32; 8];
        let mut task = FirstWeightRowsTask::new(delta, inputs, 1..3, &mut out).expect("fits");
        task.output_mut()[7] = 1.0;
        assert_eq!(task.output()[7], 1.0);
        assert_eq!(out[7], 1.0);
        let mut short = [0.0f32; 7];
        let error = FirstWeightRowsTask::new(delta, inputs, 1..3, &mut short).unwrap_err();
        assert_eq!(error, split("output length", 8, 7));
        let other = [0.0f32; 12];
        let three_rows = MatrixRef::new(&other, 3, 4).expect("3 x 4");
        let error = FirstWeightRowsTask::new(delta, three_rows, 1..3, &mut out).unwrap_err();
        assert_eq!(error, split("delta rows", 3, 2));
        assert_eq!(
            task_layout(delta, inputs, &mut out),
            Ok(DeltaLayout::BySample)
        );

        // By unit: delta is d_1 x B = 3 x 2, the units within its rows.
        let values = [0.0f32; 6];
        let by_unit = MatrixRef::new(&values, 3, 2).expect("3 x 2");
        let task = FirstWeightRowsTask::by_unit(by_unit, inputs, 1..3, &mut out).expect("fits");
        assert_eq!(task.layout(), DeltaLayout::ByUnit);
        assert_eq!((task.delta().rows(), task.units()), (3, 1..3));
        let error = FirstWeightRowsTask::by_unit(by_unit, inputs, 2..4, &mut out).unwrap_err();
        assert_eq!(error, split("end of the units", 3, 4));
        let error = FirstWeightRowsTask::by_unit(by_unit, three_rows, 1..3, &mut out).unwrap_err();
        assert_eq!(error, split("delta columns", 3, 2));
        let error = FirstWeightRowsTask::by_unit(by_unit, inputs, 1..3, &mut short).unwrap_err();
        assert_eq!(error, split("output length", 8, 7));
        // A by-sample delta of the same values (2 x 3) is no by-unit one.
        let error = FirstWeightRowsTask::by_unit(delta, inputs, 1..3, &mut out).unwrap_err();
        assert_eq!(error, split("delta columns", 2, 3));
    }

    /// The layout of a task made with `new`.
    fn task_layout(
        delta: MatrixRef<'_, f32>,
        inputs: MatrixRef<'_, f32>,
        out: &mut [f32],
    ) -> Result<DeltaLayout, Error> {
        FirstWeightRowsTask::new(delta, inputs, 0..1, &mut out[..4]).map(|task| task.layout())
    }

    #[test]
    fn the_pieces_of_a_block_of_first_layer_units_must_fit() {
        // n = 4, d_1 = 3, B = 2.
        let network = Network::<f32>::zeros(Architecture::seed(4, 3, 1).expect("4-3-1"));
        let layers = Layers::of(&network);
        let values = [0.0f32; 8];
        let inputs = Inputs::new(MatrixRef::new(&values, 2, 4).expect("2 x 4")).expect("inputs");
        let (mut a, mut s) = ([0.0f32; 4], [0.0f32; 4]);
        let mut task = FirstUnitsTask::new(layers, inputs, 1..3, &mut a, &mut s).expect("fits");
        assert_eq!((task.units(), task.inputs().rows()), (1..3, 2));
        assert_eq!(task.layers().count(), 2);
        let (activations, slopes) = task.outputs_mut();
        (activations[3], slopes[3]) = (1.0, 2.0);
        assert_eq!((a[3], s[3]), (1.0, 2.0));
        // An empty block fits too.
        assert!(FirstUnitsTask::new(layers, inputs, 2..2, &mut [], &mut []).is_ok());
        let (short, mut s) = (&mut [0.0f32; 3], [0.0f32; 4]);
        let error = FirstUnitsTask::new(layers, inputs, 1..3, short, &mut s).unwrap_err();
        assert_eq!(error, split("activations length", 4, 3));
        let (mut a, short) = ([0.0f32; 4], &mut [0.0f32; 5]);
        let error = FirstUnitsTask::new(layers, inputs, 1..3, &mut a, short).unwrap_err();
        assert_eq!(error, split("slopes length", 4, 5));
        let (mut a, mut s) = ([0.0f32; 4], [0.0f32; 4]);
        let error = FirstUnitsTask::new(layers, inputs, 2..4, &mut a, &mut s).unwrap_err();
        assert_eq!(error, split("end of the units", 3, 4));
        #[allow(clippy::reversed_empty_ranges)]
        let error = FirstUnitsTask::new(layers, inputs, 2..1, &mut [], &mut []).unwrap_err();
        assert_eq!(error, split("start of the units", 1, 2));
        let narrow = Inputs::new(MatrixRef::new(&values, 4, 2).expect("4 x 2")).expect("inputs");
        let error = FirstUnitsTask::new(layers, narrow, 0..1, &mut a, &mut s).unwrap_err();
        assert_eq!(
            error,
            Error::WidthMismatch {
                role: MatrixRole::Inputs,
                expected: 4,
                found: 2
            }
        );
    }

    #[test]
    fn the_first_layer_given_above_it_must_fit_the_batch() {
        // n = 4, d_1 = 3, m = 1, B = 2.
        let network = Network::<f64>::zeros(Architecture::seed(4, 3, 1).expect("4-3-1"));
        let (inputs, targets) = ([0.0; 8], [0.0; 2]);
        let architecture = network.architecture();
        let batch = Batch::from_slices(architecture, 2, &inputs, &targets).expect("batch");
        let mut gradient = network.zero_gradient();
        let mut delta = [0.0; 6];
        let mut task = GradientTask::new(&network, batch, &mut gradient).expect("task");
        let (given, slopes) = ([1.0; 6], [2.0; 6]);
        let above = SplitGradientTask::new(task.reborrow(), &mut delta)
            .and_then(|task| AboveFirstTask::new(task, &given, &slopes))
            .expect("fits");
        let (_, delta_out, a, s) = above.into_parts();
        assert_eq!(delta_out.len(), 6);
        assert_eq!((a.rows(), a.cols(), a.as_slice()[0]), (3, 2, 1.0));
        assert_eq!((s.rows(), s.cols(), s.as_slice()[0]), (3, 2, 2.0));
        let short = [0.0; 5];
        let error = SplitGradientTask::new(task.reborrow(), &mut delta)
            .and_then(|task| AboveFirstTask::new(task, &short, &slopes))
            .unwrap_err();
        assert_eq!(error, split("activations length", 6, 5));
        let error = SplitGradientTask::new(task.reborrow(), &mut delta)
            .and_then(|task| AboveFirstTask::new(task, &given, &short))
            .unwrap_err();
        assert_eq!(error, split("slopes length", 6, 5));
    }

    #[test]
    fn a_reborrowed_task_lends_the_same_pieces() {
        // n = 4, d_1 = 3, m = 1, B = 2.
        let network = Network::<f64>::zeros(Architecture::seed(4, 3, 1).expect("4-3-1"));
        let (inputs, targets) = ([0.5; 8], [0.0; 2]);
        let architecture = network.architecture();
        let batch = Batch::from_slices(architecture, 2, &inputs, &targets).expect("batch");

        // A block of units: what an inner kernel writes through the lent
        // task is in the wrapper's buffers, and the block is the same.
        let (mut a, mut s) = ([0.0; 4], [0.0; 4]);
        let layers = Layers::of(&network);
        let mut units =
            FirstUnitsTask::new(layers, batch.inputs(), 1..3, &mut a, &mut s).expect("fits");
        let mut lent = units.reborrow();
        assert_eq!((lent.units(), lent.inputs().rows()), (1..3, 2));
        assert_eq!(lent.layers().count(), 2);
        let (activations, slopes) = lent.outputs_mut();
        (activations[3], slopes[0]) = (1.0, 2.0);
        let (activations, slopes) = units.outputs_mut();
        assert_eq!((activations[3], slopes[0]), (1.0, 2.0));

        // The layers above: the lent task has the wrapper's delta buffer,
        // gradient buffer and first layer.
        let mut gradient = network.zero_gradient();
        let mut delta = [0.0; 6];
        let (given, given_slopes) = ([1.0; 6], [2.0; 6]);
        let task = GradientTask::new(&network, batch, &mut gradient).expect("task");
        let mut above = SplitGradientTask::new(task, &mut delta)
            .and_then(|task| AboveFirstTask::new(task, &given, &given_slopes))
            .expect("fits");
        let (task, delta_out, a, s) = above.reborrow().into_parts();
        assert_eq!(
            (a.as_slice(), s.as_slice()),
            (&given[..], &given_slopes[..])
        );
        delta_out[5] = 3.0;
        let (_, _, mut lent_gradient) = task.into_parts();
        lent_gradient.as_mut_slice()[0] = 4.0;
        let (task, delta_out, _, _) = above.into_parts();
        assert_eq!(delta_out[5], 3.0);
        let mut split = SplitGradientTask::new(task, delta_out).expect("fits");
        let (task, delta_out) = split.reborrow().into_parts();
        assert_eq!(delta_out[5], 3.0);
        let (_, _, mut lent_gradient) = task.into_parts();
        assert_eq!(lent_gradient.as_mut_slice()[0], 4.0);
    }
}
