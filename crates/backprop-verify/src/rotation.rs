//! An equivalent problem: every layer's units, the input features and the samples rotated by one place.
//!
//! Unit `j` of a layer of width `d` moves to `(j + 1) mod d`, and so do the
//! input features and the samples. Weight `(j, k)` of layer `l` moves with
//! both its units, bias `j` with its unit, and the targets' columns with the
//! output units, so every unit computes what it computed before: the loss is
//! the same sum in another order, and each gradient component is the one of
//! the moved parameter, with the same terms. A width or a batch of one stays
//! as it is.

use backprop_core::Architecture;

/// Where position `i` of `0..len` goes.
fn turned(i: usize, len: usize) -> usize {
    (i + 1) % len
}

/// Which way values move: into the rotated problem, or back out of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// From the case's layout to the rotated problem's.
    Forward,
    /// From the rotated problem's layout back to the case's.
    Back,
}

/// The `rows x cols` row-major matrix `values` with its rows and its columns
/// rotated, written into `out` (the same length).
fn rotate_matrix<T: Copy>(
    values: &[T],
    out: &mut [T],
    rows: usize,
    cols: usize,
    direction: Direction,
) {
    for r in 0..rows {
        for c in 0..cols {
            let (from, to) = (r * cols + c, turned(r, rows) * cols + turned(c, cols));
            match direction {
                Direction::Forward => out[to] = values[from],
                Direction::Back => out[from] = values[to],
            }
        }
    }
}

/// A flat parameter (or gradient) buffer of `architecture`, moved as its units move.
pub(crate) fn rotate_params<T: Copy>(
    architecture: &Architecture,
    values: &[T],
    direction: Direction,
) -> Vec<T> {
    let mut out = values.to_vec();
    for layer in architecture.layers() {
        let (weights, biases) = (layer.weight_range(), layer.bias_range());
        rotate_matrix(
            &values[weights.clone()],
            &mut out[weights],
            layer.outputs,
            layer.inputs,
            direction,
        );
        rotate_matrix(
            &values[biases.clone()],
            &mut out[biases],
            1,
            layer.outputs,
            direction,
        );
    }
    out
}

/// A `rows x cols` row-major batch matrix (inputs, targets or outputs), moved
/// as the samples and the units move.
pub(crate) fn rotate_rows<T: Copy>(
    values: &[T],
    rows: usize,
    cols: usize,
    direction: Direction,
) -> Vec<T> {
    let mut out = values.to_vec();
    rotate_matrix(values, &mut out, rows, cols, direction);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use backprop_core::{Activation, Loss};

    #[test]
    fn a_matrix_moves_one_place_down_and_right_and_back() {
        let values = [1, 2, 3, 4, 5, 6];
        let moved = rotate_rows(&values, 2, 3, Direction::Forward);
        // Row 0 goes to row 1, column c to column c + 1 (mod 3).
        assert_eq!(moved, [6, 4, 5, 3, 1, 2]);
        assert_eq!(rotate_rows(&moved, 2, 3, Direction::Back), values);
    }

    #[test]
    fn parameters_move_with_their_units_layer_by_layer() {
        let architecture = Architecture::new(
            &[2, 3, 1],
            &[Activation::Tanh, Activation::Identity],
            Loss::Mse,
        )
        .expect("a valid architecture");
        let values: Vec<usize> = (0..architecture.param_count()).collect();
        let moved = rotate_params(&architecture, &values, Direction::Forward);
        // Layer 0: W is 3 x 2 (indices 0..6), b indices 6..9; weight (j, k)
        // goes to (j + 1 mod 3, k + 1 mod 2).
        assert_eq!(&moved[0..6], &[5, 4, 1, 0, 3, 2]);
        assert_eq!(&moved[6..9], &[8, 6, 7]);
        // Layer 1: W is 1 x 3 (indices 9..12): its columns follow layer 0's units.
        assert_eq!(&moved[9..12], &[11, 9, 10]);
        assert_eq!(moved[12], 12);
        assert_eq!(
            rotate_params(&architecture, &moved, Direction::Back),
            values
        );
    }
}
