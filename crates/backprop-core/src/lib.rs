//! Core types of the backprop workspace: what every backend computes with and implements.
//!
//! This crate holds the math conventions (activations, losses), the shapes
//! (architectures, flat parameters, validated batches), the [`Backend`] trait
//! and the one [`Error`] type. It contains no backend and depends on no
//! linear-algebra or threading crate.
//!
//! The math, for layers `l = 1..L` with `A^0 = X`:
//!
//! ```text
//! Z^l = A^{l-1} W^l^T + 1 b^l^T        A^l = act_l(Z^l)
//! delta^L = dJ/dA^L (.) act_L'(Z^L)     (fused to dJ/dZ^L for softmax cross-entropy)
//! dJ/dW^l = delta^l^T A^{l-1}           dJ/db^l = column sums of delta^l
//! delta^{l-1} = (delta^l W^l) (.) act_{l-1}'(Z^{l-1})
//! theta <- theta - eta dJ/dtheta
//! ```

mod activation;
mod aligned;
mod architecture;
mod backend;
mod batch;
mod error;
mod exp;
mod loss;
mod network;
mod params;
mod pieces;
mod scalar;
mod split;
mod synthetic;
mod task;
pub mod vector;

pub use activation::Activation;
pub use aligned::{AlignedBuffer, CACHE_LINE};
pub use architecture::{Architecture, LayerShape, ParamLocation};
pub use backend::Backend;
pub use batch::{Batch, Inputs, MatrixRef, resize_matrix};
pub use error::{Error, MatrixRole, parse_name};
pub use loss::Loss;
pub use network::{Network, ParamValuesMut, check_learning_rate};
pub use params::{LayerParams, LayerParamsMut, Params};
pub use pieces::{Fork, MAX_PIECES, MIN_PIECE_VALUES};
pub use scalar::Scalar;
pub use split::{
    AboveFirstTask, DeltaLayout, FirstLayerSplit, FirstLayerUnits, FirstUnitsTask,
    FirstWeightRowsTask, SplitGradientTask,
};
pub use synthetic::synthetic_batch;
pub use task::{
    ForwardTask, GradientLayers, GradientTask, Layer, Layers, RowPart, RowSplit, SgdTask,
};
