//! The checked update's two passes (the proof's read of the gradient, the write of the
//! parameters) cut into pieces that a kernel runs on threads of its own.
//!
//! The core computes every value; the kernel's [`Fork`] only chooses the
//! threads. A piece the fork leaves out is run on the calling thread after
//! it returns, and the write's pieces are handed out once each, so neither
//! the proof nor the update depends on the fork doing its job. The pieces'
//! state lives on the stack: a step allocates nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::{LayerShape, RowSplit, Scalar, vector};

/// A way to run items on threads: `fork(count, work)` calls `work(i)` for
/// each `i` in `0..count`, on any threads, and returns once every call has
/// returned (a rayon scope, a thread pool's broadcast, or a plain loop).
///
/// The core runs afterwards any item the fork did not, and hands out each
/// piece of parameters once, so a fork that skips or repeats items changes
/// no result. A fork must not panic once it runs the update's items: they
/// write the parameters themselves.
pub type Fork<'a> = dyn FnMut(usize, &(dyn Fn(usize) + Sync)) + 'a;

/// The most pieces a pass is cut into.
pub const MAX_PIECES: usize = 64;

/// The fewest parameters a piece gets: a smaller pass is not worth a fork.
pub const MIN_PIECE_VALUES: usize = 1 << 14;

/// How many pieces `len` parameters are cut into when a kernel asks for
/// `pieces`: each gets at least [`MIN_PIECE_VALUES`] (one piece if there
/// are fewer), and there are at most [`MAX_PIECES`].
pub(crate) fn piece_count(len: usize, pieces: usize) -> usize {
    pieces.min(len / MIN_PIECE_VALUES).clamp(1, MAX_PIECES)
}

/// The part of one layer's parameters inside one piece: `(layer, start, end)`.
type Segment = (usize, usize, usize);

/// Writes each layer's largest `|g|` into `maxima`, NaN if one of its
/// components is NaN, else infinity if one is infinite (as
/// [`Scalar::largest_magnitude`] gives it), reading the gradient in
/// `pieces` contiguous pieces of nearly equal length on `fork`'s threads.
/// Returns `false`, having written nothing, when the gradient is shorter
/// than the layers, or when the pieces cut the layers into more than
/// [`MAX_PIECES`] segments (many small layers): the caller then reads the
/// gradient itself.
pub(crate) fn layer_maxima<T: Scalar>(
    gradient: &[T],
    layers: &[LayerShape],
    pieces: usize,
    fork: &mut Fork<'_>,
    maxima: &mut [f64],
) -> bool {
    let covered = layers
        .last()
        .map_or(0, |last| last.offset + last.param_count());
    if gradient.len() < covered {
        return false;
    }
    let pieces = RowSplit::new(gradient.len(), pieces);
    let mut segments: [Segment; MAX_PIECES] = [(0, 0, 0); MAX_PIECES];
    let mut count = 0;
    for (l, shape) in layers.iter().enumerate() {
        let layer = shape.offset..shape.offset + shape.param_count();
        for p in 0..pieces.count() {
            let piece = pieces.range(p);
            let (start, end) = (layer.start.max(piece.start), layer.end.min(piece.end));
            if start < end {
                let Some(segment) = segments.get_mut(count) else {
                    return false;
                };
                *segment = (l, start, end);
                count += 1;
            }
        }
    }
    let found: [AtomicU64; MAX_PIECES] = std::array::from_fn(|_| AtomicU64::new(0));
    let done: [AtomicBool; MAX_PIECES] = std::array::from_fn(|_| AtomicBool::new(false));
    let read = |i: usize| {
        if let Some(&(_, start, end)) = segments[..count].get(i) {
            let largest = gradient
                .get(start..end)
                .map_or(T::ZERO, T::largest_magnitude);
            found[i].store(largest.to_f64().to_bits(), Ordering::Relaxed);
            done[i].store(true, Ordering::Release);
        }
    };
    fork(count, &read);
    maxima.fill(0.0);
    for (i, &(l, _, _)) in segments[..count].iter().enumerate() {
        if !done[i].load(Ordering::Acquire) {
            read(i);
        }
        let largest = f64::from_bits(found[i].load(Ordering::Relaxed));
        // NaN wins over everything, as in one read of the whole layer.
        if largest.is_nan() || largest > maxima[l] {
            maxima[l] = largest;
        }
    }
    true
}

/// `params += step * gradient` (as [`vector::axpy`] computes it, over the
/// common length) in `pieces` contiguous pieces of nearly equal length (at
/// most [`MAX_PIECES`]) on `fork`'s threads; each piece is written once,
/// whatever the fork does.
pub(crate) fn axpy<T: Scalar>(
    params: &mut [T],
    step: T,
    gradient: &[T],
    pieces: usize,
    fork: &mut Fork<'_>,
) {
    type Piece<'p, T> = Mutex<Option<(&'p mut [T], &'p [T])>>;
    let slots: [Piece<'_, T>; MAX_PIECES] = std::array::from_fn(|_| Mutex::new(None));
    let len = params.len().min(gradient.len());
    let pieces = RowSplit::new(len, pieces.min(MAX_PIECES));
    let count = pieces.count();
    let mut gradient = gradient;
    for (slot, piece) in slots.iter().zip(pieces.pieces(&mut params[..len], 1)) {
        let (here, rest) = gradient.split_at(piece.len().min(gradient.len()));
        gradient = rest;
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some((piece, here));
    }
    let write = |i: usize| {
        let piece = slots
            .get(i)
            .and_then(|slot| slot.lock().unwrap_or_else(PoisonError::into_inner).take());
        if let Some((params, gradient)) = piece {
            vector::axpy(params, step, gradient);
        }
    };
    fork(count, &write);
    for i in 0..count {
        write(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Forks that do their job in different ways, and forks that do not.
    fn forks() -> Vec<(&'static str, Box<Fork<'static>>)> {
        vec![
            (
                "in order",
                Box::new(|count, work| (0..count).for_each(work)),
            ),
            (
                "backwards",
                Box::new(|count, work| (0..count).rev().for_each(work)),
            ),
            (
                "on threads",
                Box::new(|count, work| {
                    std::thread::scope(|scope| {
                        for i in 0..count {
                            scope.spawn(move || work(i));
                        }
                    });
                }),
            ),
            ("nothing", Box::new(|_, _| {})),
            (
                "the first only",
                Box::new(|count, work| (0..count.min(1)).for_each(work)),
            ),
            (
                "twice each",
                Box::new(|count, work| (0..2 * count).for_each(|i| work(i / 2))),
            ),
            (
                "past the end",
                Box::new(|count, work| (0..count + 3).for_each(work)),
            ),
        ]
    }

    fn layers(widths: &[usize]) -> Vec<LayerShape> {
        let activations = vec![crate::Activation::Tanh; widths.len() - 1];
        crate::Architecture::new(widths, &activations, crate::Loss::Mse)
            .expect("a valid architecture")
            .layers()
            .to_vec()
    }

    #[test]
    fn pieces_are_at_least_the_minimum_and_at_most_the_maximum() {
        assert_eq!(piece_count(MIN_PIECE_VALUES - 1, 8), 1);
        assert_eq!(piece_count(2 * MIN_PIECE_VALUES - 1, 8), 1);
        assert_eq!(piece_count(2 * MIN_PIECE_VALUES, 8), 2);
        assert_eq!(piece_count(2 * MIN_PIECE_VALUES, 0), 1);
        assert_eq!(piece_count(1000 * MIN_PIECE_VALUES, 8), 8);
        assert_eq!(piece_count(1000 * MIN_PIECE_VALUES, 1000), MAX_PIECES);
        assert_eq!(piece_count(0, 8), 1);
    }

    #[test]
    fn maxima_in_pieces_are_each_layers_maximum_whatever_the_fork() {
        // Three layers over pieces that cut inside and across them; a NaN
        // in one layer and an infinity in another, each beside larger values.
        let layers = layers(&[300, 200, 150, 7]);
        let len = layers.iter().map(LayerShape::param_count).sum::<usize>();
        let mut gradient: Vec<f64> = (0..len).map(|i| ((i * 37) % 1001) as f64 - 500.0).collect();
        let second = layers[1].offset;
        gradient[second + 5] = f64::NAN;
        gradient[second + 6] = 1e300;
        gradient[len - 1] = f64::NEG_INFINITY;
        gradient[3] = -2e9;
        let expected = [2e9, f64::NAN, f64::INFINITY];
        // 62 pieces make 64 segments at most, the most there is room for.
        for pieces in [1, 2, 3, 5, 62] {
            for (name, mut fork) in forks() {
                let mut maxima = [f64::NAN; 3];
                assert!(layer_maxima(
                    &gradient,
                    &layers,
                    pieces,
                    &mut *fork,
                    &mut maxima
                ));
                let bits = |v: [f64; 3]| v.map(|x| if x.is_nan() { u64::MAX } else { x.to_bits() });
                assert_eq!(bits(maxima), bits(expected), "{pieces} pieces, fork {name}");
            }
        }
    }

    #[test]
    fn a_piece_that_ends_where_a_layer_ends_makes_no_empty_segment() {
        // 3-3-3: two layers of 12 parameters, cut in two pieces exactly at
        // the layers' boundary: two segments, each layer's values alone.
        let layers = layers(&[3, 3, 3]);
        let gradient: Vec<f64> = (0..24).map(|i| if i < 12 { 1.0 } else { -5.0 }).collect();
        let mut items = Vec::new();
        let mut maxima = [f64::NAN; 2];
        let mut fork = |count: usize, work: &(dyn Fn(usize) + Sync)| {
            items.push(count);
            (0..count).for_each(work);
        };
        assert!(layer_maxima(&gradient, &layers, 2, &mut fork, &mut maxima));
        assert_eq!(items, [2]);
        assert_eq!(maxima, [1.0, 5.0]);
    }

    #[test]
    fn a_gradient_shorter_than_the_layers_is_left_to_the_caller() {
        // Its last values are missing, so no maximum can be claimed for them.
        let layers = layers(&[3, 3, 3]);
        let gradient = vec![1.0f64; 23];
        let mut maxima = [-1.0; 2];
        let mut run = |count: usize, work: &(dyn Fn(usize) + Sync)| (0..count).for_each(work);
        assert!(!layer_maxima(&gradient, &layers, 2, &mut run, &mut maxima));
        assert_eq!(maxima, [-1.0, -1.0], "nothing written");
    }

    #[test]
    fn too_many_segments_are_left_to_the_caller() {
        // 40 layers of 4,160 parameters cut by 50 pieces of 3,328 make 80
        // segments (the two cuts meet at every fourth layer).
        let widths = vec![64; 41];
        let layers = layers(&widths);
        let len = layers.iter().map(LayerShape::param_count).sum::<usize>();
        let gradient = vec![1.0f32; len];
        let mut maxima = vec![-1.0; 40];
        let mut nothing = |_: usize, _: &(dyn Fn(usize) + Sync)| {};
        assert!(!layer_maxima(
            &gradient,
            &layers,
            50,
            &mut nothing,
            &mut maxima
        ));
        assert!(maxima.iter().all(|&m| m == -1.0), "nothing written");
        assert!(layer_maxima(
            &gradient,
            &layers,
            1,
            &mut nothing,
            &mut maxima
        ));
        assert!(maxima.iter().all(|&m| m == 1.0));
    }

    #[test]
    fn the_update_in_pieces_writes_every_value_once_whatever_the_fork() {
        let len = 1001;
        let gradient: Vec<f32> = (0..len).map(|i| (i % 17) as f32 * 0.37 - 3.0).collect();
        let start: Vec<f32> = (0..len).map(|i| (i % 23) as f32 * 1.3 - 11.0).collect();
        let mut expected = start.clone();
        vector::axpy(&mut expected, -0.05, &gradient);
        for pieces in [1, 2, 7, 64, 65] {
            for (name, mut fork) in forks() {
                let mut params = start.clone();
                axpy(&mut params, -0.05, &gradient, pieces, &mut *fork);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&params),
                    bits(&expected),
                    "{pieces} pieces, fork {name}"
                );
            }
        }
    }
}
