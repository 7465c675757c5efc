//! How the backend uses threads: never, always on rayon, or by the size of the work.

use backprop_core::{Activation, Loss};
use faer::Par;

use crate::gemm::ProductPlan;

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
/// is set about twice as high as the quiet-machine figure. These were faer's
/// parallel products; [`Parallelism::RowBlocks`], which `Auto` now uses from
/// here on, forks once per product as they do. In the same example's
/// "split" column, re-run on the Intel machine under a load average of 10
/// (`-- 128 160 192 203 256 384`), the two cost the same within 6% at every
/// size (f32 `203^3`: 116.5 us faer-parallel, 113.4 us split, 103.9 us
/// sequential; `384^3`: 668 against 681 and 652 us); with the second core
/// busy, neither beat one thread there, as on the AMD machine when loaded.
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
/// Products are handed to faer with `Par::Seq` or `Par::rayon`, or cut into
/// one block of the destination's rows per thread, each a sequential faer
/// product (see [`ProductPlan`]); elementwise
/// passes over many values (from 16 Ki values for passes evaluating `exp` or
/// `tanh`, from 256 Ki for the others) are split into one block of rows per
/// thread. A step that may fork runs as one job on rayon's pool, so that its
/// forks are cheap pushes onto a worker's own queue.
///
/// The passes give the same bits however they are split: their blocks are
/// independent, and the loss is summed over the rows in order. faer does not
/// promise that a parallel product rounds as a sequential one does (on the
/// tests' shapes they agree bit for bit), so results of different choices
/// agree to rounding. Row blocks give the bits of the sequential product
/// whenever faer's kernels round each output value the same way in a block
/// as in the whole, which the tests check to `1e-12`.
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
    /// A product whose `m * n * k` reaches [`AUTO_CROSSOVER_MNK`] as one
    /// sequential product per thread of rayon's current pool, each over a
    /// block of the destination's rows; smaller ones on the calling thread;
    /// elementwise passes as with `Rayon(0)`.
    RowBlocks,
    /// A product on the calling thread while its `m * n * k` is below
    /// [`AUTO_CROSSOVER_MNK`] and as [`Parallelism::RowBlocks`] from there
    /// on, since forking a small product costs more than it saves;
    /// elementwise passes as with `Rayon(0)`.
    ///
    /// Row blocks rather than faer's parallel GEMM because two sequential
    /// products at once outrun one parallel product on two threads: 1024^3
    /// f32 ran at 113 GFLOP/s as two halves against 86 with `Par::rayon(2)`
    /// (`cargo run --release -p backprop-faer --example layouts`), and the
    /// whole step followed. Measured with `cargo run --release -p
    /// backprop-rayon --example steps -- S,M,L f32,f64 1
    /// faer,faer-rayon,...`, 9 to 15 interleaved rounds on the shared
    /// 2-core machine (medians): L f32 160 ms with row blocks against 206
    /// ms with faer's parallel products (fastest rounds 84 against 111), L
    /// f64 302 against 441, M f32 823 against 855 us, M f64 1855 against
    /// 2087 us. See `docs/faer-layouts.md`.
    #[default]
    Auto,
}

impl Parallelism {
    /// How to run one product `(m x k) * (k x n)`.
    pub fn for_product(self, m: usize, n: usize, k: usize) -> ProductPlan {
        let small = m.saturating_mul(n).saturating_mul(k) < AUTO_CROSSOVER_MNK;
        match self {
            Parallelism::Sequential => ProductPlan::Faer(Par::Seq),
            Parallelism::Rayon(threads) => {
                ProductPlan::Faer(Par::rayon(threads.min(rayon::current_num_threads())))
            }
            Parallelism::RowBlocks | Parallelism::Auto if small || m < 2 => {
                ProductPlan::Faer(Par::Seq)
            }
            Parallelism::RowBlocks | Parallelism::Auto => {
                ProductPlan::RowBlocks(rayon::current_num_threads())
            }
        }
    }

    /// Whether a step on `rows` samples through `widths` may fork at all.
    pub(crate) fn may_fork(self, widths: &[usize], rows: usize) -> bool {
        match self {
            Parallelism::Sequential => false,
            Parallelism::Rayon(_) => true,
            Parallelism::RowBlocks | Parallelism::Auto => {
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
            Parallelism::Rayon(0) | Parallelism::RowBlocks | Parallelism::Auto => {
                rayon::current_num_threads()
            }
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
        let seq = ProductPlan::Faer(Par::Seq);
        assert_eq!(Parallelism::Sequential.for_product(huge, huge, huge), seq);
        let expensive = PassCost::Expensive;
        assert_eq!(
            Parallelism::Sequential.pass_blocks(huge, huge, expensive),
            1
        );
        assert_eq!(Parallelism::Auto.for_product(1, 1, 1), seq);
        assert_eq!(Parallelism::RowBlocks.for_product(64, 64, 64), seq);
        assert_eq!(Parallelism::RowBlocks.for_product(1, huge, huge), seq);
        assert_eq!(
            Parallelism::RowBlocks.for_product(huge, huge, huge),
            ProductPlan::RowBlocks(rayon::current_num_threads())
        );
        assert_eq!(Parallelism::Auto.pass_blocks(1, 1, expensive), 1);
        assert_eq!(
            Parallelism::Auto.for_product(usize::MAX, usize::MAX, usize::MAX),
            ProductPlan::RowBlocks(rayon::current_num_threads())
        );
        assert_eq!(
            Parallelism::Auto.pass_blocks(huge, huge, PassCost::Cheap),
            rayon::current_num_threads()
        );
        let threads = rayon::current_num_threads();
        assert_eq!(
            Parallelism::Rayon(2).for_product(1, 1, 1),
            ProductPlan::Faer(Par::rayon(2.min(threads)))
        );
        assert_eq!(
            Parallelism::Rayon(usize::MAX).for_product(1, 1, 1),
            ProductPlan::Faer(Par::rayon(threads))
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

    #[test]
    fn thresholds_are_inclusive_at_their_values() {
        // On a pool of two threads, so that splitting is possible.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            let seq = ProductPlan::Faer(Par::Seq);
            let split = ProductPlan::RowBlocks(2);
            // `m n k` exactly at the crossover splits; one less does not.
            assert_eq!(
                Parallelism::Auto.for_product(1 << 11, 1 << 6, 1 << 6),
                split
            );
            assert_eq!(
                Parallelism::Auto.for_product(1 << 11, 1 << 6, (1 << 6) - 1),
                seq
            );
            // Two rows are enough to split; one is not.
            assert_eq!(
                Parallelism::RowBlocks.for_product(2, 1 << 11, 1 << 11),
                split
            );
            assert_eq!(Parallelism::RowBlocks.for_product(1, 1 << 12, 1 << 12), seq);
            // A pass of exactly the minimum number of values splits.
            let expensive = PassCost::Expensive;
            let half = EXPENSIVE_PASS_MIN_VALUES / 2;
            assert_eq!(Parallelism::Auto.pass_blocks(2, half, expensive), 2);
            assert_eq!(Parallelism::Auto.pass_blocks(2, half - 1, expensive), 1);
            let half = CHEAP_PASS_MIN_VALUES / 2;
            assert_eq!(Parallelism::Auto.pass_blocks(2, half, PassCost::Cheap), 2);
            assert_eq!(
                Parallelism::Auto.pass_blocks(2, half - 1, PassCost::Cheap),
                1
            );
            // Small products but one wide layer: its activation pass forks.
            let wide = EXPENSIVE_PASS_MIN_VALUES / 2;
            assert!(Parallelism::Auto.may_fork(&[1, wide, 1], 2));
            assert!(!Parallelism::Auto.may_fork(&[1, wide - 1, 1], 2));
            // A product at the crossover forks with narrow passes.
            assert!(Parallelism::RowBlocks.may_fork(&[1 << 10, 1 << 3], 1 << 10));
            assert!(!Parallelism::RowBlocks.may_fork(&[(1 << 10) - 1, 1 << 3], 1 << 10));
        });
    }
}
