//! The one error type of the workspace: every caller mistake becomes one of its variants.

use std::fmt;

use crate::{Activation, ParamLocation};

/// Which matrix of a batch a value or shape belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatrixRole {
    /// The inputs `X`, one sample per row.
    Inputs,
    /// The targets `Y`, one sample per row.
    Targets,
}

impl fmt::Display for MatrixRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatrixRole::Inputs => "inputs",
            MatrixRole::Targets => "targets",
        })
    }
}

/// Everything that can go wrong when a caller hands the library bad input.
///
/// The library returns one of these for every caller mistake and never panics
/// on one. Each message names the sizes involved.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// An architecture needs at least an input and an output width.
    TooFewWidths {
        /// How many widths were given.
        found: usize,
    },
    /// A layer of width zero.
    ZeroWidth {
        /// The position of the zero in the widths (0 is the input width).
        position: usize,
        /// All the widths given.
        widths: Vec<usize>,
    },
    /// The number of activations differs from the number of weight layers.
    ActivationCount {
        /// Weight layers: one fewer than the widths.
        layers: usize,
        /// Activations given.
        found: usize,
    },
    /// Softmax cross-entropy fuses the softmax itself, so it needs identity outputs.
    SoftmaxNeedsIdentityOutput {
        /// The output activation that was given instead.
        found: Activation,
    },
    /// The parameter count, or a layer's size, does not fit in `usize`.
    ParameterCountOverflow {
        /// The widths whose parameters do not fit.
        widths: Vec<usize>,
    },
    /// A flat parameter buffer of the wrong length for its architecture.
    ParameterLength {
        /// The widths of the architecture.
        widths: Vec<usize>,
        /// The parameter count those widths need.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// Two parameter sets (say, a network and a gradient buffer) of different layouts.
    ParameterLayout {
        /// The widths the operation needed.
        expected: Vec<usize>,
        /// The widths of the parameters given.
        found: Vec<usize>,
    },
    /// A matrix whose buffer length is not `rows * cols`.
    MatrixLength {
        /// Rows claimed.
        rows: usize,
        /// Columns claimed.
        cols: usize,
        /// The buffer's length.
        found: usize,
    },
    /// A batch without a single sample.
    EmptyBatch {
        /// Which matrix has no rows.
        role: MatrixRole,
    },
    /// Inputs and targets with different numbers of samples.
    RowCountMismatch {
        /// Rows of `X`.
        input_rows: usize,
        /// Rows of `Y`.
        target_rows: usize,
    },
    /// A matrix whose width does not match the architecture.
    WidthMismatch {
        /// Which matrix.
        role: MatrixRole,
        /// The width the architecture needs (`n` for inputs, `m` for targets and outputs).
        expected: usize,
        /// The width given.
        found: usize,
    },
    /// A NaN or an infinity in a batch, rejected when the batch is built.
    NonFiniteValue {
        /// Which matrix.
        role: MatrixRole,
        /// Row of the value.
        row: usize,
        /// Column of the value.
        col: usize,
        /// The value, widened to `f64`.
        value: f64,
    },
    /// A learning rate that is negative, NaN or infinite.
    InvalidLearningRate {
        /// The value, widened to `f64`.
        value: f64,
    },
    /// A name (of a backend, activation or loss) that is not known.
    UnknownName {
        /// What kind of thing was named.
        what: &'static str,
        /// The name given.
        name: String,
        /// The names that are valid.
        valid: Vec<&'static str>,
    },
    /// A buffer that a computation needs and whose size does not fit in
    /// memory: more than `usize::MAX` values, or an allocation that failed.
    TooLarge {
        /// The buffer, such as `faer scratch`.
        what: &'static str,
        /// Its rows.
        rows: usize,
        /// Its columns.
        cols: usize,
    },
    /// A NaN or an infinity among a network's parameters, rejected where
    /// parameters enter a network (construction, `set_params`,
    /// `update_params`, loading) or, after `param_values_mut`, at the
    /// network's next use.
    NonFiniteParameter {
        /// The parameter.
        location: ParamLocation,
        /// The value, widened to `f64`.
        value: f64,
    },
    /// A step whose gradient is not finite; the network is left as it was.
    NonFiniteGradient {
        /// The first non-finite component, in layout order.
        location: ParamLocation,
        /// The component, widened to `f64`.
        value: f64,
    },
    /// A loss that is not finite; a step that computed it leaves the network as it was.
    NonFiniteLoss {
        /// The loss, widened to `f64`.
        value: f64,
    },
    /// An SGD update `theta - eta * g` that overflows although `theta`, `g`
    /// and `eta` are finite (a learning rate or gradient far too large); the
    /// network is left as it was.
    NonFiniteUpdate {
        /// The first parameter whose update overflows, in layout order.
        location: ParamLocation,
        /// The parameter before the update, widened to `f64`.
        parameter: f64,
        /// Its gradient component, widened to `f64`.
        gradient: f64,
        /// The learning rate, widened to `f64`.
        learning_rate: f64,
    },
    /// A forward pass whose pre-activations could overflow: the bound
    /// `|z| <= (d_{l-1} max|a^{l-1}| + 1) max|theta^l|` of a layer, from the
    /// largest input and parameter magnitudes, reaches `limit` (a sixteenth
    /// of the type's largest value). Checked before any backend runs, so that
    /// every backend gives the same error instead of results that depend on
    /// the order of its sums.
    MayOverflow {
        /// The weight layer, from 0.
        layer: usize,
        /// The bound on that layer's `|z|`.
        bound: f64,
        /// The largest bound accepted.
        limit: f64,
    },
    /// Per-sample loss arguments of different or zero lengths.
    SampleLength {
        /// The argument at fault, such as `targets`.
        what: &'static str,
        /// The length needed (the output width, at least 1).
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// Pieces of a first-layer split (see `FirstLayerSplit`) whose sizes do not fit together.
    SplitMismatch {
        /// The piece at fault, such as `delta rows`.
        what: &'static str,
        /// The size the other pieces call for.
        expected: usize,
        /// The size given.
        found: usize,
    },
    /// A problem a kernel was not built for, such as a width past its
    /// tiles: how a kernel that handles only some architectures, batch
    /// sizes or losses declines the others, before it writes anything. No
    /// built-in backend returns it. The verifier asks once per case, on the
    /// case's shape with every value zero, and reports a case declined there
    /// as declined, never as passed; a later refusal of a case it accepted
    /// is a failure.
    Unsupported {
        /// The kernel's name, as `Backend::name` gives it.
        backend: &'static str,
        /// What it does not support, naming the sizes involved (say, "input
        /// width 300 is past the 256 this kernel's tiles hold").
        reason: String,
    },
}

/// Finds the item of `all` whose name is `name`; the error lists the valid names.
///
/// Backs the `FromStr` of every named choice (activations, losses, backends).
pub fn parse_name<K: Copy>(
    what: &'static str,
    name: &str,
    all: &[K],
    name_of: fn(K) -> &'static str,
) -> Result<K, Error> {
    all.iter()
        .copied()
        .find(|&item| name_of(item) == name)
        .ok_or_else(|| Error::UnknownName {
            what,
            name: name.to_owned(),
            valid: all.iter().map(|&item| name_of(item)).collect(),
        })
}

/// Formats widths as `64-32-10`.
pub(crate) fn widths_label(widths: &[usize]) -> String {
    widths
        .iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join("-")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooFewWidths { found } => write!(
                f,
                "an architecture needs at least 2 widths (inputs and outputs), got {found}"
            ),
            Error::ZeroWidth { position, widths } => write!(
                f,
                "width {position} of {} is zero; every layer needs at least one neuron",
                widths_label(widths)
            ),
            Error::ActivationCount { layers, found } => write!(
                f,
                "{layers} weight {} need{} {layers} {}, got {found}",
                if *layers == 1 { "layer" } else { "layers" },
                if *layers == 1 { "s" } else { "" },
                if *layers == 1 {
                    "activation"
                } else {
                    "activations"
                },
            ),
            Error::SoftmaxNeedsIdentityOutput { found } => write!(
                f,
                "softmax cross-entropy needs an identity output activation, got {found}"
            ),
            Error::ParameterCountOverflow { widths } => write!(
                f,
                "the parameter count of {} does not fit in usize",
                widths_label(widths)
            ),
            Error::ParameterLength {
                widths,
                expected,
                found,
            } => write!(
                f,
                "architecture {} has {expected} parameters, got a buffer of {found}",
                widths_label(widths)
            ),
            Error::ParameterLayout { expected, found } => write!(
                f,
                "parameters laid out for {} where {} was needed",
                widths_label(found),
                widths_label(expected)
            ),
            Error::MatrixLength { rows, cols, found } => write!(
                f,
                "a {rows} x {cols} matrix needs {} values, got {found}",
                rows.checked_mul(*cols)
                    .map_or_else(|| "more than usize::MAX".to_owned(), |n| n.to_string())
            ),
            Error::EmptyBatch { role } => {
                write!(f, "{role} have 0 rows; a batch needs at least one sample")
            }
            Error::RowCountMismatch {
                input_rows,
                target_rows,
            } => write!(
                f,
                "inputs have {input_rows} rows but targets have {target_rows}"
            ),
            Error::WidthMismatch {
                role,
                expected,
                found,
            } => write!(
                f,
                "{role} have {found} columns but the architecture needs {expected}"
            ),
            Error::NonFiniteValue {
                role,
                row,
                col,
                value,
            } => write!(f, "{role} hold {value} at row {row}, column {col}"),
            Error::InvalidLearningRate { value } => write!(
                f,
                "the learning rate must be finite and at least 0, got {value}"
            ),
            Error::TooLarge {
                what,
                rows,
                cols: 1,
            } => {
                write!(f, "{what}: {rows} values do not fit in memory")
            }
            Error::TooLarge { what, rows, cols } => {
                write!(f, "{what}: {rows} x {cols} values do not fit in memory")
            }
            Error::SplitMismatch {
                what,
                expected,
                found,
            } => write!(
                f,
                "first-layer split: {what} is {found}, the other pieces need {expected}"
            ),
            Error::NonFiniteParameter { location, value } => {
                write!(f, "the network's parameter {location} is {value}")
            }
            Error::NonFiniteGradient { location, value } => write!(
                f,
                "the gradient is {value} at {location}; the network was left as it was"
            ),
            Error::NonFiniteLoss { value } => write!(
                f,
                "the loss is {value}; a step that computed it left the network as it was"
            ),
            Error::NonFiniteUpdate {
                location,
                parameter,
                gradient,
                learning_rate,
            } => write!(
                f,
                "the update of {location} overflows: {parameter} - {learning_rate} * {gradient} is not finite; the network was left as it was"
            ),
            Error::MayOverflow {
                layer,
                bound,
                limit,
            } => write!(
                f,
                "layer {layer}'s pre-activations could reach {bound:e}, beyond the {limit:e} this precision computes without overflow; scale the inputs or parameters down"
            ),
            Error::SampleLength {
                what,
                expected,
                found,
            } => write!(
                f,
                "a sample's {what} hold {found} values where the loss needs {expected}"
            ),
            Error::Unsupported { backend, reason } => {
                write!(
                    f,
                    "the {backend} kernel does not support this problem: {reason}"
                )
            }
            Error::UnknownName { what, name, valid } => write!(
                f,
                "unknown {what} '{name}'; valid names are: {}",
                valid.join(", ")
            ),
        }
    }
}

impl std::error::Error for Error {}
