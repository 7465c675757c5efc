//! All weights and biases of a network in one contiguous buffer, with per-layer views.
//!
//! The layout is `W^1, b^1, W^2, b^2, ...`, each `W^l` row-major
//! `d_l x d_{l-1}`. Gradients use the same type and layout, so finite
//! differences, the SGD update, summing per-thread gradients and comparing two
//! backends are each one loop over one slice.

use crate::{Architecture, Error, LayerShape, Scalar};

/// A flat parameter (or gradient) buffer laid out for one set of widths.
///
/// Its length and layout never change after it is built; only the values do.
#[derive(Clone, Debug, PartialEq)]
pub struct Params<T> {
    widths: Vec<usize>,
    layers: Vec<LayerShape>,
    values: Vec<T>,
}

/// One layer's weights and biases, borrowed from a [`Params`].
#[derive(Clone, Copy, Debug)]
pub struct LayerParams<'a, T> {
    /// Where the layer sits and its widths.
    pub shape: LayerShape,
    /// `W^l`, `outputs x inputs`, row-major.
    pub weights: &'a [T],
    /// `b^l`, `outputs` values.
    pub bias: &'a [T],
}

/// One layer's weights and biases, mutably borrowed from a [`Params`].
#[derive(Debug)]
pub struct LayerParamsMut<'a, T> {
    /// Where the layer sits and its widths.
    pub shape: LayerShape,
    /// `W^l`, `outputs x inputs`, row-major.
    pub weights: &'a mut [T],
    /// `b^l`, `outputs` values.
    pub bias: &'a mut [T],
}

impl<T: Scalar> Params<T> {
    /// All-zero parameters for an architecture, or [`Error::TooLarge`]
    /// (`what` is `parameters`, `rows` the parameter count) if they cannot
    /// be allocated: an architecture's parameter count always fits `usize`,
    /// not always memory.
    pub fn try_zeros(architecture: &Architecture) -> Result<Self, Error> {
        let count = architecture.param_count();
        let mut values = Vec::new();
        values
            .try_reserve_exact(count)
            .map_err(|_| Error::TooLarge {
                what: "parameters",
                rows: count,
                cols: 1,
            })?;
        values.resize(count, T::ZERO);
        Ok(Params {
            widths: architecture.widths().to_vec(),
            layers: architecture.layers().to_vec(),
            values,
        })
    }

    /// All-zero parameters for an architecture known to fit in memory.
    ///
    /// Allocates as `vec!` does: for an architecture whose parameters do not
    /// fit in memory it panics (more than `isize::MAX` bytes) or aborts (an
    /// allocation that fails). Use [`Params::try_zeros`] for an architecture
    /// that comes from outside the program.
    pub fn zeros(architecture: &Architecture) -> Self {
        Params {
            widths: architecture.widths().to_vec(),
            layers: architecture.layers().to_vec(),
            values: vec![T::ZERO; architecture.param_count()],
        }
    }

    /// Wraps a flat buffer laid out as this module describes.
    pub fn from_values(architecture: &Architecture, values: Vec<T>) -> Result<Self, Error> {
        if values.len() != architecture.param_count() {
            return Err(Error::ParameterLength {
                widths: architecture.widths().to_vec(),
                expected: architecture.param_count(),
                found: values.len(),
            });
        }
        Ok(Params {
            widths: architecture.widths().to_vec(),
            layers: architecture.layers().to_vec(),
            values,
        })
    }

    /// The same values rounded (or widened) to another precision.
    pub fn to_precision<U: Scalar>(&self) -> Params<U> {
        Params {
            widths: self.widths.clone(),
            layers: self.layers.clone(),
            values: self
                .values
                .iter()
                .map(|v| U::from_f64(v.to_f64()))
                .collect(),
        }
    }

    /// The widths this buffer is laid out for.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no values (never true for a valid architecture).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// All values, in layout order.
    pub fn as_slice(&self) -> &[T] {
        &self.values
    }

    /// All values, mutably; the layout stays fixed. (A network's own
    /// parameters are changed through `Network::update_params`, which checks them.)
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.values
    }

    /// The values, giving up the layout.
    pub fn into_values(self) -> Vec<T> {
        self.values
    }

    /// The weight layers' shapes.
    pub fn layer_shapes(&self) -> &[LayerShape] {
        &self.layers
    }

    /// The first value that is NaN or infinite, with its index, if any.
    pub fn first_non_finite(&self) -> Option<(usize, T)> {
        first_non_finite(&self.values)
    }

    /// Layer `l`'s weights and biases (`l` from 0); `None` past the last layer.
    pub fn layer(&self, l: usize) -> Option<LayerParams<'_, T>> {
        let shape = *self.layers.get(l)?;
        Some(LayerParams {
            shape,
            weights: &self.values[shape.weight_range()],
            bias: &self.values[shape.bias_range()],
        })
    }

    /// Layer `l`'s weights and biases, mutably; `None` past the last layer.
    pub fn layer_mut(&mut self, l: usize) -> Option<LayerParamsMut<'_, T>> {
        let shape = *self.layers.get(l)?;
        let (weights, bias) = self.values[shape.offset..shape.offset + shape.param_count()]
            .split_at_mut(shape.weight_count());
        Some(LayerParamsMut {
            shape,
            weights,
            bias,
        })
    }

    /// Whether `other` is laid out for the same widths.
    pub fn same_layout<U>(&self, other: &Params<U>) -> bool {
        self.widths == other.widths
    }

    /// Checks that this buffer is laid out for `architecture`.
    pub fn check_layout(&self, architecture: &Architecture) -> Result<(), Error> {
        if self.widths == architecture.widths() {
            Ok(())
        } else {
            Err(Error::ParameterLayout {
                expected: architecture.widths().to_vec(),
                found: self.widths.clone(),
            })
        }
    }

    /// Lays this buffer out for `architecture`, all zero, unless it already
    /// is (then its values stay). Allocates only when the widths change, as
    /// [`Params::zeros`] does.
    pub fn fit_layout(&mut self, architecture: &Architecture) {
        if self.widths != architecture.widths() {
            *self = Params::zeros(architecture);
        }
    }

    /// Exchanges the values with `other`, which must hold as many (the
    /// layout is kept); a step's update made the parameters in O(1).
    pub(crate) fn swap_values(&mut self, other: &mut Vec<T>) {
        if other.len() == self.values.len() {
            std::mem::swap(&mut self.values, other);
        }
    }

    /// Sets every value to zero.
    pub fn fill_zero(&mut self) {
        self.values.fill(T::ZERO);
    }

    /// `self += alpha * x`, the one loop behind SGD and gradient accumulation.
    pub fn axpy(&mut self, alpha: T, x: &Params<T>) -> Result<(), Error> {
        self.check_same_layout(x)?;
        crate::vector::axpy(&mut self.values, alpha, &x.values);
        Ok(())
    }

    /// `self *= alpha`.
    pub fn scale(&mut self, alpha: T) {
        for value in &mut self.values {
            *value *= alpha;
        }
    }

    fn check_same_layout(&self, other: &Params<T>) -> Result<(), Error> {
        if self.same_layout(other) {
            Ok(())
        } else {
            Err(Error::ParameterLayout {
                expected: self.widths.clone(),
                found: other.widths.clone(),
            })
        }
    }
}

/// The first value of `values` that is NaN or infinite, with its index.
pub(crate) fn first_non_finite<T: Scalar>(values: &[T]) -> Option<(usize, T)> {
    if T::largest_magnitude(values).is_finite() {
        return None;
    }
    values
        .iter()
        .position(|value| !value.is_finite())
        .map(|index| (index, values[index]))
}

#[cfg(test)]
mod tests {
    use super::Params;
    use crate::{Activation, Architecture, Error, Loss};

    fn architecture(widths: &[usize]) -> Architecture {
        let activations = vec![Activation::Sigmoid; widths.len() - 1];
        Architecture::new(widths, &activations, Loss::Mse).expect("valid")
    }

    #[test]
    fn a_buffer_knows_its_layout_and_its_layers() {
        let a = architecture(&[2, 3, 1]);
        let mut params =
            Params::from_values(&a, (0..13).map(|i| i as f32).collect()).expect("13 values");
        assert_eq!((params.len(), params.is_empty()), (13, false));
        assert_eq!(params.widths(), &[2, 3, 1]);
        let second = params.layer(1).expect("two layers");
        assert_eq!(second.weights, &[9.0, 10.0, 11.0]);
        assert_eq!(second.bias, &[12.0]);
        assert!(params.layer(2).is_none());
        params.layer_mut(0).expect("two layers").bias[2] = -1.0;
        assert_eq!(params.as_slice()[8], -1.0);
        assert!(params.layer_mut(2).is_none());
        assert_eq!(params.clone().into_values().len(), 13);
        assert_eq!(params.into_values()[12], 12.0);
    }

    #[test]
    fn layouts_are_compared_and_refitted_by_widths() {
        let (a, b) = (architecture(&[2, 3, 1]), architecture(&[1, 4, 1]));
        assert_eq!(a.param_count(), b.param_count());
        let mut params = Params::<f32>::zeros(&a);
        params.as_mut_slice().fill(1.0);
        assert!(params.same_layout(&Params::<f64>::zeros(&a)));
        assert!(!params.same_layout(&Params::<f32>::zeros(&b)));
        // The same layout keeps its values; another is laid out anew, zeroed.
        params.fit_layout(&a);
        assert!(params.as_slice().iter().all(|&v| v == 1.0));
        params.fit_layout(&b);
        assert_eq!(params.widths(), &[1, 4, 1]);
        assert!(params.as_slice().iter().all(|&v| v == 0.0));
    }

    #[test]
    fn axpy_and_scale_follow_their_formulas_on_one_layout_only() {
        let a = architecture(&[1, 1]);
        let mut y = Params::from_values(&a, vec![1.0f64, -2.0]).expect("two values");
        let x = Params::from_values(&a, vec![4.0, 8.0]).expect("two values");
        y.axpy(0.5, &x).expect("one layout");
        assert_eq!(y.as_slice(), &[3.0, 2.0]);
        y.scale(-3.0);
        assert_eq!(y.as_slice(), &[-9.0, -6.0]);
        let other = Params::zeros(&architecture(&[2, 1]));
        let error = y.axpy(1.0, &other).unwrap_err();
        assert!(
            matches!(error, Error::ParameterLayout { ref expected, ref found } if expected == &[1, 1] && found == &[2, 1]),
            "{error:?}"
        );
        assert_eq!(y.as_slice(), &[-9.0, -6.0]);
    }
}
