//! How the backend uses threads: never, always on rayon, or by the size of the work.

use backprop_core::{Activation, Loss};
use faer::Par;

/// The size `m * n * k` of a product `(m x k) * (k x n)` from which
/// [`Parallelism::Auto`] runs it on rayon's pool: `2^23`, about `203^3`.
///
/// Measured with `cargo run --release -p backprop-faer --example crossover`
/// on the 2-core AMD EPYC (Zen 4, virtualised) machine of the benchmarks,
/// medians of 21 interleaved samples, several runs. Handing a product to
/// rayon costs 15-20 us however small it is: `64 x 32 x 64` takes 2.4-2.9 us
/// sequentially and 16-28 us with `Par::rayon(0)`, `128^3` 38-43 us and
/// 54-73 us (f32). With the second core idle, the parallel product first
/// wins at about `160^3` (`m * n * k` = 4.1M: f32 72-81 us sequentially,
/// 70-79 us in parallel) for f32 and at about `128^3` (2.1M) for f64; at
/// `192^3` (7.1M) it wins for both (f32 124-136 us against 101-112 us, f64
/// 247-265 us against 167-177 us). When anything else runs on the other
/// core, a parallel product loses up to `256^3` and beyond, so the crossover
/// is set about twice as high as the quiet-machine figure. Every product of the benchmark shapes is far
/// from it: S's are at most 0.33M, M has two of 25.7M, L's are 1.07G.
pub const AUTO_CROSSOVER_MNK: usize = 1 << 23;

/// The number of values from which an elementwise pass that evaluates `exp`
/// or `tanh` per value (sigmoid and tanh layers, the softmax loss) is split
/// over rayon's threads, unless the backend is [`Parallelism::Sequential`].
///
/// Such a pass costs about 5 ns a value on the measured machine, so this many
/// values take about 80 us, a few times what a fork and join costs there.
const EXPENSIVE_PASS_MIN_VALUES: usize = 1 << 14;

/// The same for the passes of a few arithmetic operations a value, about
/// 0.3 ns each (ReLU and identity layers, derivatives, the MSE loss).
const CHEAP_PASS_MIN_VALUES: usize = 1 << 18;

/// How much work an elementwise pass does per value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PassCost {
    /// An `exp` or `tanh` per value.
    Expensive,
    /// A few arithmetic operations per value.
    Cheap,
}

impl PassCost {
    /// The activation pass: `exp` or `tanh` for sigmoid and tanh layers.
    pub(crate) fn of_activation(activation: Activation) -> PassCost {
        match activation {
            Activation::Sigmoid | Activation::Tanh => PassCost::Expensive,
            Activation::Relu | Activation::Identity => PassCost::Cheap,
        }
    }

    /// The loss pass: `exp` per value for the softmax, arithmetic for MSE.
    pub(crate) fn of_loss(loss: Loss) -> PassCost {
        match loss {
            Loss::SoftmaxCrossEntropy => PassCost::Expensive,
            Loss::Mse => PassCost::Cheap,
        }
    }
}

/// The backend's use of threads, chosen when it is built.
///
/// Products are handed to faer with `Par::Seq` or `Par::rayon`; elementwise
/// passes over many values (from 16 Ki values for passes evaluating `exp` or
/// `tanh`, from 256 Ki for the others) are split into one block of rows per
/// thread. A step that may fork runs as one job on rayon's pool, so that its
/// forks are cheap pushes onto a worker's own queue.
///
/// The passes give the same bits however they are split: their blocks are
/// independent, and the loss is summed over the rows in order. faer does not
/// promise that a parallel product rounds as a sequential one does (on the
/// tests' shapes they agree bit for bit), so results of different choices
/// agree to rounding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Parallelism {
    /// Everything on the calling thread. Never forks, so this is the choice
    /// inside an outer thread pool (such as the batch-parallel rayon backend).
    Sequential,
    /// Every product on rayon's current pool with at most this many threads
    /// (`0` means all of the pool's threads; more than the pool has are
    /// taken as all of them), and elementwise passes over many values split
    /// as many ways.
    Rayon(usize),
    /// A product on the calling thread while its `m * n * k` is below
    /// [`AUTO_CROSSOVER_MNK`] and on all of rayon's current pool from there
    /// on, since forking a small product costs more than it saves; elementwise
    /// passes as with `Rayon(0)`.
    #[default]
    Auto,
}

impl Parallelism {
    /// The faer parallelism for one product `(m x k) * (k x n)`.
    pub fn for_product(self, m: usize, n: usize, k: usize) -> Par {
        match self {
            Parallelism::Sequential => Par::Seq,
            Parallelism::Rayon(threads) => Par::rayon(threads.min(rayon::current_num_threads())),
            Parallelism::Auto => {
                if m.saturating_mul(n).saturating_mul(k) < AUTO_CROSSOVER_MNK {
                    Par::Seq
                } else {
                    Par::rayon(0)
                }
            }
        }
    }

    /// Whether a step on `rows` samples through `widths` may fork at all.
    pub(crate) fn may_fork(self, widths: &[usize], rows: usize) -> bool {
        match self {
            Parallelism::Sequential => false,
            Parallelism::Rayon(_) => true,
            Parallelism::Auto => {
                let largest_product = widths
                    .windows(2)
                    .map(|pair| rows.saturating_mul(pair[0]).saturating_mul(pair[1]))
                    .max()
                    .unwrap_or(0);
                let widest = widths.get(1..).unwrap_or_default().iter().max();
                largest_product >= AUTO_CROSSOVER_MNK
                    || widest.is_some_and(|&w| self.pass_blocks(rows, w, PassCost::Expensive) > 1)
            }
        }
    }

    /// Into how many blocks of rows to split an elementwise pass over `rows`
    /// rows of `width` values; 1 means on the calling thread.
    pub(crate) fn pass_blocks(self, rows: usize, width: usize, cost: PassCost) -> usize {
        let threads = match self {
            Parallelism::Sequential => return 1,
            Parallelism::Rayon(0) | Parallelism::Auto => rayon::current_num_threads(),
            Parallelism::Rayon(threads) => threads.min(rayon::current_num_threads()),
        };
        let min_values = match cost {
            PassCost::Expensive => EXPENSIVE_PASS_MIN_VALUES,
            PassCost::Cheap => CHEAP_PASS_MIN_VALUES,
        };
        if rows.saturating_mul(width) < min_values {
            1
        } else {
            threads.clamp(1, rows.max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_never_forks_and_auto_forks_only_large_work() {
        let huge = 1 << 12;
        assert_eq!(
            Parallelism::Sequential.for_product(huge, huge, huge),
            Par::Seq
        );
        let expensive = PassCost::Expensive;
        assert_eq!(
            Parallelism::Sequential.pass_blocks(huge, huge, expensive),
            1
        );
        assert_eq!(Parallelism::Auto.for_product(1, 1, 1), Par::Seq);
        assert_eq!(Parallelism::Auto.pass_blocks(1, 1, expensive), 1);
        assert_eq!(
            Parallelism::Auto.for_product(usize::MAX, usize::MAX, usize::MAX),
            Par::rayon(0)
        );
        assert_eq!(
            Parallelism::Auto.pass_blocks(huge, huge, PassCost::Cheap),
            rayon::current_num_threads()
        );
        let threads = rayon::current_num_threads();
        assert_eq!(
            Parallelism::Rayon(2).for_product(1, 1, 1),
            Par::rayon(2.min(threads))
        );
        assert_eq!(
            Parallelism::Rayon(usize::MAX).for_product(1, 1, 1),
            Par::rayon(threads)
        );
        assert_eq!(
            Parallelism::Rayon(usize::MAX).pass_blocks(usize::MAX, 1, expensive),
            threads
        );
        assert!(!Parallelism::Sequential.may_fork(&[huge, huge], huge));
        assert!(!Parallelism::Auto.may_fork(&[64, 32, 10], 64));
        assert!(Parallelism::Auto.may_fork(&[784, 256, 10], 128));
        assert!(Parallelism::Rayon(0).may_fork(&[1, 1], 1));
        assert_eq!(Parallelism::Rayon(3).pass_blocks(2, 4 * huge, expensive), 2);
        assert_eq!(
            Parallelism::Rayon(3).pass_blocks(2, 4 * huge, PassCost::Cheap),
            1
        );
        assert_eq!(Parallelism::default(), Parallelism::Auto);
    }
}
