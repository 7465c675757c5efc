//! The training crate's error type: what can go wrong with data, settings, files and checkpoints.

use std::fmt;
use std::path::PathBuf;

/// Which part of a dataset a size or value belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetPart {
    /// The features (a network's inputs), one sample per row.
    Features,
    /// The targets (one-hot class labels or real values), one sample per row.
    Targets,
}

impl fmt::Display for DatasetPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatasetPart::Features => "features",
            DatasetPart::Targets => "targets",
        })
    }
}

/// Everything that can go wrong when training, evaluating, loading data or
/// reading and writing checkpoints.
///
/// Every caller mistake is one of these, never a panic. Each message names the
/// sizes involved. Errors of `backprop-core` (a batch that does not fit the
/// network, a bad learning rate, ...) are wrapped in [`Error::Core`], and
/// operating-system errors in [`Error::Io`]; both are returned by
/// [`std::error::Error::source`], and their messages are left to it (print
/// the chain, as `anyhow`'s `{:#}` does, to see them).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An error of `backprop-core`: the network, a batch or a setting it checks.
    Core(backprop_core::Error),
    /// A line of a data file that cannot be read as a sample.
    Data {
        /// The 1-based line at fault (for an unreadable stream, the line
        /// being read when it failed).
        line: usize,
        /// The 1-based column (comma-separated field) at fault, when one field is.
        column: Option<usize>,
        /// What is wrong, with the value found and the value expected.
        reason: String,
    },
    /// A checkpoint that cannot be read back as a network, or a network that cannot be saved as one.
    Checkpoint {
        /// The tensor at fault, such as `layers.0.weight`, when one is.
        tensor: Option<String>,
        /// What is wrong, with what was expected and what was found.
        reason: String,
    },
    /// A file that cannot be opened, read or written.
    Io {
        /// The file's path.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A setting (of training, or of a data split) outside its valid range.
    InvalidSetting {
        /// The setting's name, such as `batch_size`.
        name: &'static str,
        /// The value given.
        value: String,
        /// What a valid value is.
        expected: String,
    },
    /// A dataset width of zero: every sample needs a feature and a target (or a class).
    ZeroWidth {
        /// The part whose width is zero.
        part: DatasetPart,
    },
    /// A buffer whose length is not a whole number of rows of its width.
    RaggedRows {
        /// Which buffer.
        part: DatasetPart,
        /// The width of one row.
        width: usize,
        /// The buffer's length.
        found: usize,
    },
    /// Features and targets (or labels) of different numbers of samples.
    RowCountMismatch {
        /// Rows of features.
        feature_rows: usize,
        /// Rows of targets, or the number of labels.
        target_rows: usize,
    },
    /// A NaN or an infinity among a dataset's values.
    NonFinite {
        /// Which part holds it.
        part: DatasetPart,
        /// The sample (row), from 0.
        row: usize,
        /// The column, from 0.
        column: usize,
        /// The value, widened to `f64`.
        value: f64,
    },
    /// A class label not below the class count.
    LabelOutOfRange {
        /// The sample (row) with the label, from 0.
        sample: usize,
        /// The label given.
        label: usize,
        /// The number of classes: labels run from 0 to one less.
        classes: usize,
    },
    /// A sample index past the last row of a dataset.
    IndexOutOfRange {
        /// The index given.
        index: usize,
        /// The dataset's number of rows.
        rows: usize,
    },
    /// An operation that needs class labels, asked of a dataset with real-valued targets.
    NeedsLabels {
        /// The operation, such as `a stratified split`.
        operation: &'static str,
        /// The width of the dataset's real-valued targets.
        target_width: usize,
    },
    /// A training step that failed: the core's error (a gradient, loss or
    /// update that is not finite, say) with the epoch and the step within it.
    /// The network holds the parameters of the step before.
    Step {
        /// The epoch, from 1.
        epoch: usize,
        /// The step (mini-batch) within the epoch, from 1.
        step: usize,
        /// What went wrong.
        source: backprop_core::Error,
    },
    /// A compressed stream that decompresses to more than the limit given.
    DecompressedTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// A dataset whose values would not fit in memory.
    TooLarge {
        /// Which part.
        part: DatasetPart,
        /// Rows asked for.
        rows: usize,
        /// Values per row.
        width: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Core(_) => f.write_str("the network, a batch or a setting was rejected"),
            Error::Data {
                line,
                column: Some(column),
                reason,
            } => write!(f, "line {line}, column {column}: {reason}"),
            Error::Data {
                line,
                column: None,
                reason,
            } => write!(f, "line {line}: {reason}"),
            Error::Checkpoint {
                tensor: Some(tensor),
                reason,
            } => write!(f, "checkpoint tensor '{tensor}': {reason}"),
            Error::Checkpoint {
                tensor: None,
                reason,
            } => write!(f, "checkpoint: {reason}"),
            Error::Io { path, .. } => {
                write!(f, "cannot open, read or write '{}'", path.display())
            }
            Error::InvalidSetting {
                name,
                value,
                expected,
            } => write!(f, "{name} must be {expected}, got {value}"),
            Error::ZeroWidth { part } => write!(
                f,
                "{part} have width 0; every sample needs at least one feature and one target or class"
            ),
            Error::RaggedRows { part, width, found } => write!(
                f,
                "{part} hold {found} values, not a whole number of rows of width {width}"
            ),
            Error::RowCountMismatch {
                feature_rows,
                target_rows,
            } => write!(
                f,
                "features have {feature_rows} rows but targets (or labels) have {target_rows}"
            ),
            Error::NonFinite {
                part,
                row,
                column,
                value,
            } => write!(f, "{part} hold {value} at row {row}, column {column}"),
            Error::LabelOutOfRange {
                sample,
                label,
                classes,
            } => write!(
                f,
                "label {label} of sample {sample} is not a class: with {classes} classes a label must be less than {classes}"
            ),
            Error::IndexOutOfRange { index, rows } => write!(
                f,
                "sample index {index} is past the end of a dataset of {rows} rows"
            ),
            Error::NeedsLabels {
                operation,
                target_width,
            } => write!(
                f,
                "{operation} needs class labels, but the dataset has real-valued targets of width {target_width}"
            ),
            Error::Step { epoch, step, .. } => {
                write!(
                    f,
                    "training failed at step {step} of epoch {epoch}; the network holds the parameters from before that step"
                )
            }
            Error::DecompressedTooLarge { limit } => write!(
                f,
                "the stream decompresses to more than {limit} bytes, the limit for this file"
            ),
            Error::TooLarge { part, rows, width } => write!(
                f,
                "{part} of {rows} rows of width {width} do not fit in memory"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Core(error) | Error::Step { source: error, .. } => Some(error),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<backprop_core::Error> for Error {
    fn from(error: backprop_core::Error) -> Self {
        Error::Core(error)
    }
}
