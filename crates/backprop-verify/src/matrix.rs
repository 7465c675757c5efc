//! The case matrix every backend is checked on: shapes, activations, losses and seeds, with their oracles.
//!
//! The matrix holds the protocol's shapes (the seed network, a deep one, a
//! width-1 layer, a single layer, a batch of one) for every activation, both
//! losses and every seed; shapes whose widths and batch sizes sit on both
//! sides of the vector and tile edges 8, 16, 32 and 64, for every activation
//! and loss with the first seed; cells whose layers differ in activation,
//! on the deep protocol shapes with the first seed; cells whose tanh and
//! sigmoid units saturate and cells whose values overflow a naive
//! exponential, with both losses (and softmax logits past its range behind
//! ReLU and identity layers too) and the first seed; and an author's added
//! shapes, with the mixed cells and the cells at those limits on them too,
//! among the cells the negative controls run on. Each cell's oracles are computed once, when first needed, and shared
//! by every backend checked on the matrix.

use std::sync::OnceLock;

use backprop_core::{Activation, Architecture, Error, Loss, MatrixRole};

use crate::case::Case;
use crate::checks::Oracle;

/// A shape of the matrix: a name, the widths `n, d_1, ..., m` and a batch size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// What the shape is for, as the report names it.
    pub name: String,
    /// The widths `n, d_1, ..., m`.
    pub widths: Vec<usize>,
    /// The batch size `B`.
    pub rows: usize,
}

impl Shape {
    /// A shape named `name`.
    pub fn new(name: impl Into<String>, widths: &[usize], rows: usize) -> Self {
        Shape {
            name: name.into(),
            widths: widths.to_vec(),
            rows,
        }
    }
}

/// The protocol's shapes, run with every seed: the seed network, a deep
/// one and a deeper one (9 weight layers, past a table of 8), a width-1
/// layer, a single layer, a batch of one.
pub fn protocol_shapes() -> Vec<Shape> {
    vec![
        Shape::new("seed n-h-m", &[4, 5, 3], 8),
        Shape::new("4 layers", &[5, 8, 6, 4, 3], 6),
        Shape::new("9 layers", &[3, 5, 4, 6, 3, 4, 5, 3, 4, 2], 6),
        Shape::new("width 1", &[3, 1, 4, 2], 5),
        Shape::new("1 layer", &[6, 3], 7),
        Shape::new("batch 1", &[4, 6, 3], 1),
    ]
}

/// Shapes whose widths and batch sizes sit on both sides of the vector and
/// tile edges 8, 16, 32 and 64, and just past 128 and 256 (1, 7, 8, 9, 15,
/// 16, 17, 31, 33, 63, 64, 65, 129, 257), run with the first seed only; in
/// each, the last sample's inputs are all zero (padding, a blank image).
pub fn edge_shapes() -> Vec<Shape> {
    vec![
        Shape::new("edges 8", &[9, 7, 8], 15),
        Shape::new("edges 16", &[17, 15, 16, 9], 17),
        Shape::new("edges 32", &[33, 31, 2], 33),
        Shape::new("edges 64", &[65, 9, 1], 65),
        Shape::new("edges 63-64", &[64, 1, 63], 31),
        Shape::new("edges 128", &[129, 4, 2], 33),
        Shape::new("edges 256", &[257, 3, 2], 17),
        Shape::new("257 rows", &[9, 5, 3], 257),
    ]
}

/// The cells whose layers differ in activation, with `seed`, on `widths`
/// (at least two weight layers) and `rows`: four networks for each loss,
/// each activation in turn in the first layer and the others after it in
/// [`Activation::ALL`]'s order, so that over the four every activation
/// meets every layer; the output layer's activation is the next in turn
/// for MSE and identity for softmax cross-entropy (whose cells need two
/// hidden layers, at least, to differ from the matrix's others). Every other cell of the
/// matrix has one activation in all its hidden layers, so a kernel that
/// applied one layer's activation to every layer would pass them all.
/// Each is named `mixed` and `suffix`.
pub fn mixed_cells(
    widths: &[usize],
    rows: usize,
    seed: u64,
    suffix: &str,
) -> Result<Vec<Cell>, Error> {
    let layers = widths.len().saturating_sub(1);
    if layers < 2 {
        return Ok(Vec::new());
    }
    let mut cells = Vec::new();
    // Softmax cross-entropy's outputs are identity, so its networks differ
    // from the other cells' only with two hidden layers or more.
    let losses = Loss::ALL
        .into_iter()
        .filter(|&loss| loss == Loss::Mse || layers > 2);
    for loss in losses {
        for activations in activation_turns(layers) {
            let activations = with_output_for(loss, activations);
            let architecture = Architecture::new(widths, &activations, loss)?;
            cells.push(Cell {
                mixed: true,
                ..Cell::new(
                    format!("mixed{suffix}"),
                    seed,
                    Case::random(architecture, rows, seed),
                )
            });
        }
    }
    Ok(cells)
}

/// The activations of `layers` weight layers, one network per turn: each
/// activation in turn first, the others after it in [`Activation::ALL`]'s
/// order, so that over the turns every activation meets every layer.
pub(crate) fn activation_turns(layers: usize) -> impl Iterator<Item = Vec<Activation>> {
    let all = Activation::ALL;
    (0..all.len()).map(move |turn| (0..layers).map(|l| all[(turn + l) % all.len()]).collect())
}

/// `activations` as `loss` takes them: the last made identity for softmax
/// cross-entropy, whose outputs are the logits.
pub(crate) fn with_output_for(loss: Loss, mut activations: Vec<Activation>) -> Vec<Activation> {
    if loss == Loss::SoftmaxCrossEntropy
        && let Some(last) = activations.last_mut()
    {
        *last = Activation::Identity;
    }
    activations
}

/// The protocol shapes the cells whose layers differ in activation are
/// built on ([`mixed_cells`]): the deep ones.
const MIXED_SHAPES: [&str; 2] = ["4 layers", "9 layers"];

/// The cells whose units saturate (see [`Case::saturated`]), with the
/// first seed: a tanh and a sigmoid network, each with an MSE output of the
/// same activation and with a softmax cross-entropy output.
pub fn saturating_cells(seed: u64) -> Result<Vec<Cell>, Error> {
    let architectures = limit_architectures(&[4, 6, 5, 3], &[4, 6, 5, 4], "")?;
    Ok(limit_cells(Limit::Saturated, architectures, 8, seed))
}

/// The cells whose values overflow a naive exponential (see
/// [`Case::overflowing`]), with the first seed: on the architectures of
/// [`saturating_cells`], and on a ReLU and an identity network with a
/// softmax cross-entropy output, so that a kernel for those hidden
/// activations alone also meets logits past the exponential's range.
pub fn overflowing_cells(seed: u64) -> Result<Vec<Cell>, Error> {
    let mut architectures = limit_architectures(&[4, 6, 5, 3], &[4, 6, 5, 4], "")?;
    architectures.extend(softmax_architectures(&[4, 6, 5, 4], "")?);
    Ok(limit_cells(Limit::Overflowing, architectures, 8, seed))
}

/// Both kinds of cells at the exponential's limits on an author's shape,
/// its widths and rows, as [`saturating_cells`] and [`overflowing_cells`]
/// have them: a kernel that declines the fixed ones' widths meets them at
/// the shapes it accepts.
fn limit_cells_at(shape: &Shape, seed: u64) -> Result<Vec<Cell>, Error> {
    let suffix = format!(" at {}", shape.name);
    let mut architectures = limit_architectures(&shape.widths, &shape.widths, &suffix)?;
    let mut cells = limit_cells(Limit::Saturated, architectures.clone(), shape.rows, seed);
    architectures.extend(softmax_architectures(&shape.widths, &suffix)?);
    cells.extend(limit_cells(
        Limit::Overflowing,
        architectures,
        shape.rows,
        seed,
    ));
    Ok(cells)
}

/// Which limit of the exponential a cell's values sit at.
#[derive(Clone, Copy)]
enum Limit {
    /// Units saturated ([`Case::saturated`]).
    Saturated,
    /// Values past the exponential's range ([`Case::overflowing`]).
    Overflowing,
}

/// A cell at `limit` on each of `architectures`, with `rows` samples.
fn limit_cells(
    limit: Limit,
    architectures: Vec<(String, Architecture)>,
    rows: usize,
    seed: u64,
) -> Vec<Cell> {
    let cell = |(name, architecture): (String, Architecture)| {
        let (kind, case) = match limit {
            Limit::Saturated => ("saturated", Case::saturated(architecture, rows, seed)),
            Limit::Overflowing => ("overflow", Case::overflowing(architecture, rows, seed)),
        };
        Cell {
            saturating: matches!(limit, Limit::Saturated),
            overflowing: matches!(limit, Limit::Overflowing),
            ..Cell::new(format!("{kind} {name}"), seed, case)
        }
    };
    architectures.into_iter().map(cell).collect()
}

/// The architectures the cells at the exponential's limits are built on
/// (see [`saturating_cells`]), each with its name (ending in `suffix`): a
/// tanh and a sigmoid network, on `mse_widths` with an MSE output of the
/// same activation and on `softmax_widths` with a softmax cross-entropy one.
fn limit_architectures(
    mse_widths: &[usize],
    softmax_widths: &[usize],
    suffix: &str,
) -> Result<Vec<(String, Architecture)>, Error> {
    let mut architectures = Vec::new();
    for activation in [Activation::Tanh, Activation::Sigmoid] {
        for loss in Loss::ALL {
            let widths = match loss {
                Loss::Mse => mse_widths,
                Loss::SoftmaxCrossEntropy => softmax_widths,
            };
            architectures.push(named_architecture(widths, activation, loss, suffix)?);
        }
    }
    Ok(architectures)
}

/// The ReLU and identity networks on `widths` with a softmax cross-entropy
/// output, named as [`limit_architectures`] names them: activations that
/// do not saturate, whose only exponential is the softmax's.
fn softmax_architectures(
    widths: &[usize],
    suffix: &str,
) -> Result<Vec<(String, Architecture)>, Error> {
    [Activation::Relu, Activation::Identity]
        .into_iter()
        .map(|activation| named_architecture(widths, activation, Loss::SoftmaxCrossEntropy, suffix))
        .collect()
}

/// [`cell_architecture`] named for the cells at the exponential's limits:
/// `tanh mse` and the like, then `suffix`.
fn named_architecture(
    widths: &[usize],
    activation: Activation,
    loss: Loss,
    suffix: &str,
) -> Result<(String, Architecture), Error> {
    let architecture = cell_architecture(widths, activation, loss)?;
    Ok((format!("{activation} {loss}{suffix}"), architecture))
}

/// The network of a cell on `widths`: `activation` in every hidden layer,
/// and in the output layer too for MSE; identity outputs (the logits) for
/// softmax cross-entropy.
fn cell_architecture(
    widths: &[usize],
    activation: Activation,
    loss: Loss,
) -> Result<Architecture, Error> {
    let output = match loss {
        Loss::Mse => activation,
        Loss::SoftmaxCrossEntropy => Activation::Identity,
    };
    Architecture::with_hidden_and_output(widths, activation, output, loss)
}

/// One case of the matrix, what it is, and its oracles (computed once).
#[derive(Debug)]
pub struct Cell {
    /// The shape's name.
    pub shape: String,
    /// The seed the case was drawn from.
    pub seed: u64,
    /// Whether the case's units saturate, so that the saturation check
    /// applies (see [`saturating_cells`]).
    pub saturating: bool,
    /// Whether the case's values overflow a naive exponential (see
    /// [`overflowing_cells`]).
    pub overflowing: bool,
    /// Whether the case's layers differ in activation (see [`mixed_cells`]).
    pub mixed: bool,
    /// Whether the shape is one an author added (the `extra` shapes of
    /// [`Matrix::new`]).
    pub added: bool,
    /// The network and batch, in `f64`.
    pub case: Case<f64>,
    oracle: OnceLock<Oracle>,
    rounded: OnceLock<Case<f32>>,
    rounded_oracle: OnceLock<Oracle>,
}

impl Cell {
    /// A cell of `case`.
    pub fn new(shape: impl Into<String>, seed: u64, case: Case<f64>) -> Self {
        Cell {
            shape: shape.into(),
            seed,
            saturating: false,
            overflowing: false,
            mixed: false,
            added: false,
            case,
            oracle: OnceLock::new(),
            rounded: OnceLock::new(),
            rounded_oracle: OnceLock::new(),
        }
    }

    /// The case in `f64` and its oracle.
    pub fn f64(&self) -> (&Case<f64>, &Oracle) {
        (
            &self.case,
            self.oracle.get_or_init(|| Oracle::of(&self.case)),
        )
    }

    /// The case rounded to `f32`, without its oracle.
    pub fn f32_case(&self) -> &Case<f32> {
        self.rounded.get_or_init(|| self.case.to_precision::<f32>())
    }

    /// The case rounded to `f32` and the `f64` oracle of those rounded values.
    pub fn f32(&self) -> (&Case<f32>, &Oracle) {
        let case = self.f32_case();
        (case, self.rounded_oracle.get_or_init(|| Oracle::of(case)))
    }

    /// Whether every negative control's mistake is visible here: more than
    /// one output, more than one layer and more than one row.
    pub fn shows_every_mistake(&self) -> bool {
        let architecture = self.case.network.architecture();
        architecture.output_width() > 1 && architecture.layer_count() > 1 && self.case.rows > 1
    }
}

/// Every cell a conformance run checks.
#[derive(Debug)]
pub struct Matrix {
    /// The cells, protocol shapes first.
    pub cells: Vec<Cell>,
}

impl Matrix {
    /// The protocol shapes with every seed in `seeds`, then the edge shapes
    /// and `extra` shapes with the first seed: each for every activation
    /// (hidden, and output for MSE; identity outputs for softmax
    /// cross-entropy) and both losses. The 4-layer ReLU cells pin a neuron
    /// of the first layer on its kink, to show that such components are
    /// excluded and counted, and the 9-layer ReLU cells one of every hidden
    /// layer, where the slope at 0 must be 0 in every layer. Then the cells
    /// whose layers differ in activation on the deep protocol shapes
    /// ([`mixed_cells`]), the cells at the exponential's limits
    /// ([`saturating_cells`], [`overflowing_cells`]), and both on each
    /// `extra` shape's widths and rows.
    ///
    /// Fails with [`Error::EmptyBatch`] if an `extra` shape has no rows, or
    /// with the architecture's error if its widths make no network.
    pub fn new(seeds: &[u64], extra: &[Shape]) -> Result<Self, Error> {
        if extra.iter().any(|shape| shape.rows == 0) {
            return Err(Error::EmptyBatch {
                role: MatrixRole::Inputs,
            });
        }
        let mut cells = Vec::new();
        let first = seeds.first().copied().unwrap_or(1);
        // Each shape with its seeds, whether its last sample is blank (the
        // edge shapes) and whether an author added it.
        let edges = edge_shapes()
            .into_iter()
            .map(|shape| (shape, vec![first], true, false));
        let runs = protocol_shapes()
            .into_iter()
            .map(|shape| (shape, seeds.to_vec(), false, false))
            .chain(edges)
            .chain(
                extra
                    .iter()
                    .map(|shape| (shape.clone(), vec![first], false, true)),
            );
        for (shape, seeds, blank_last, added) in runs {
            for activation in Activation::ALL {
                for loss in Loss::ALL {
                    let architecture = cell_architecture(&shape.widths, activation, loss)?;
                    for &seed in &seeds {
                        let case = Case::random(architecture.clone(), shape.rows, seed);
                        let case = match (activation, shape.name.as_str()) {
                            (Activation::Relu, "4 layers") => case.pin_first_neuron_at_kink(),
                            (Activation::Relu, "9 layers") => {
                                case.pin_a_neuron_of_every_hidden_layer_at_kink()
                            }
                            _ => case,
                        };
                        let case = if blank_last {
                            case.with_blank_sample(shape.rows - 1)
                        } else {
                            case
                        };
                        cells.push(Cell {
                            added,
                            ..Cell::new(shape.name.clone(), seed, case)
                        });
                    }
                }
            }
        }
        for shape in protocol_shapes() {
            if MIXED_SHAPES.contains(&shape.name.as_str()) {
                let suffix = format!(" {}", shape.name);
                cells.extend(mixed_cells(&shape.widths, shape.rows, first, &suffix)?);
            }
        }
        cells.extend(saturating_cells(first)?);
        cells.extend(overflowing_cells(first)?);
        for shape in extra {
            let suffix = format!(" at {}", shape.name);
            let mut added = mixed_cells(&shape.widths, shape.rows, first, &suffix)?;
            added.extend(limit_cells_at(shape, first)?);
            cells.extend(added.into_iter().map(|cell| Cell {
                added: true,
                ..cell
            }));
        }
        Ok(Matrix { cells })
    }

    /// The cells where every negative control's mistake is visible: of the
    /// protocol shapes with the first seed only, the cells whose layers
    /// differ in activation, the saturating cells, and those of the shapes
    /// an author added (so that a kernel that declines the protocol shapes
    /// still meets the controls at its own).
    pub fn control_cells(&self) -> impl Iterator<Item = &Cell> {
        let first = self.cells.first().map(|cell| cell.seed);
        let protocol: Vec<String> = protocol_shapes().into_iter().map(|s| s.name).collect();
        self.cells.iter().filter(move |cell| {
            let protocol_cell = Some(cell.seed) == first && protocol.contains(&cell.shape);
            let kind = protocol_cell || cell.mixed || cell.saturating || cell.added;
            cell.shows_every_mistake() && kind
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_cells_end_on_a_blank_sample_and_the_cells_at_the_limits_are_marked() {
        let matrix = Matrix::new(&[1], &[]).expect("a valid matrix");
        let edges: Vec<String> = edge_shapes().into_iter().map(|shape| shape.name).collect();
        for cell in &matrix.cells {
            let n = cell.case.network.architecture().input_width();
            let last = &cell.case.inputs[(cell.case.rows - 1) * n..];
            let blank = last.iter().all(|&x| x == 0.0);
            assert_eq!(blank, edges.contains(&cell.shape), "{}", cell.shape);
        }
        let marked = |mark: fn(&Cell) -> bool, prefix: &str| {
            let cells: Vec<&Cell> = matrix.cells.iter().filter(|cell| mark(cell)).collect();
            assert!(cells.iter().all(|cell| cell.shape.starts_with(prefix)));
            cells.len()
        };
        assert_eq!(marked(|cell| cell.saturating, "saturated "), 4);
        assert_eq!(marked(|cell| cell.overflowing, "overflow "), 6);
    }

    #[test]
    fn the_controls_run_on_the_first_seed_of_the_protocol_the_saturating_cells_and_added_shapes() {
        let mine = Shape::new("mine", &[5, 6, 3], 4);
        let matrix = Matrix::new(&[1, 2], &[mine]).expect("a valid matrix");
        let protocol: Vec<String> = protocol_shapes().into_iter().map(|s| s.name).collect();
        let names: Vec<(&str, u64)> = matrix
            .control_cells()
            .map(|cell| (cell.shape.as_str(), cell.seed))
            .collect();
        for cell in &matrix.cells {
            let chosen = names.contains(&(cell.shape.as_str(), cell.seed));
            let of_protocol = protocol.contains(&cell.shape);
            let expected = cell.shows_every_mistake()
                && ((of_protocol && cell.seed == 1) || cell.mixed || cell.saturating || cell.added);
            assert_eq!(chosen, expected, "{} seed {}", cell.shape, cell.seed);
        }
        // Some cells of each kind, and none of the second seed or the edges.
        assert!(names.iter().any(|&(shape, _)| shape == "mine"));
        assert!(
            names
                .iter()
                .any(|&(shape, _)| shape == "saturated tanh mse at mine")
        );
        assert!(
            names
                .iter()
                .all(|&(shape, seed)| seed == 1 && !shape.starts_with("edges"))
        );
        assert!(names.iter().any(|&(shape, _)| shape == "mixed 4 layers"));
        assert!(names.iter().any(|&(shape, _)| shape == "mixed at mine"));
        // A single layer and a batch of one cannot show every mistake.
        assert!(
            names
                .iter()
                .all(|&(shape, _)| shape != "1 layer" && shape != "batch 1")
        );
    }

    /// The activations of the weight layers of the matrix's cells named `shape` with `loss`.
    fn mixed_networks(matrix: &Matrix, shape: &str, loss: Loss) -> Vec<Vec<Activation>> {
        matrix
            .cells
            .iter()
            .filter(|cell| cell.shape == shape)
            .map(|cell| cell.case.network.architecture())
            .filter(|architecture| architecture.loss() == loss)
            .map(|architecture| architecture.activations().to_vec())
            .collect()
    }

    #[test]
    fn the_mixed_cells_put_every_activation_in_every_layer() {
        let mine = Shape::new("mine", &[4, 5, 3], 6);
        let single = Shape::new("single", &[4, 3], 6);
        let matrix = Matrix::new(&[7, 8], &[mine, single]).expect("a valid matrix");
        for (shape, layers) in [
            ("mixed 4 layers", 4),
            ("mixed 9 layers", 9),
            ("mixed at mine", 2),
        ] {
            for loss in Loss::ALL {
                let networks = mixed_networks(&matrix, shape, loss);
                if loss == Loss::SoftmaxCrossEntropy && layers == 2 {
                    assert!(networks.is_empty(), "{shape}: one hidden layer");
                    continue;
                }
                assert_eq!(networks.len(), Activation::ALL.len(), "{shape} {loss}");
                for l in 0..layers {
                    let mut seen: Vec<Activation> = networks.iter().map(|a| a[l]).collect();
                    seen.sort_by_key(|a| a.name());
                    seen.dedup();
                    let expected = match loss {
                        Loss::SoftmaxCrossEntropy if l + 1 == layers => vec![Activation::Identity],
                        _ => {
                            let mut all = Activation::ALL.to_vec();
                            all.sort_by_key(|a| a.name());
                            all
                        }
                    };
                    assert_eq!(seen, expected, "{shape} {loss} layer {l}");
                }
                // Each network's first two layers differ.
                assert!(networks.iter().all(|a| a[0] != a[1]), "{shape} {loss}");
            }
        }
        let mixed: Vec<&Cell> = matrix.cells.iter().filter(|cell| cell.mixed).collect();
        assert_eq!(mixed.len(), (2 * 2 + 1) * Activation::ALL.len());
        assert!(
            mixed
                .iter()
                .all(|cell| cell.seed == 7 && cell.shape.starts_with("mixed"))
        );
        assert!(
            mixed
                .iter()
                .all(|cell| cell.added == cell.shape.ends_with("at mine"))
        );
        // Every other cell has one activation in all its hidden layers.
        for cell in matrix.cells.iter().filter(|cell| !cell.mixed) {
            let activations = cell.case.network.architecture().activations();
            let hidden = &activations[..activations.len() - 1];
            assert!(
                hidden.windows(2).all(|pair| pair[0] == pair[1]),
                "{}",
                cell.shape
            );
        }
    }

    #[test]
    fn an_added_shape_without_rows_is_an_error() {
        let empty = Shape::new("empty", &[3, 2], 0);
        let error = Matrix::new(&[1], &[empty]).expect_err("no rows");
        assert!(matches!(error, Error::EmptyBatch { .. }), "{error}");
    }
}
