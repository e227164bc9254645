//! Per-series work of one evaluation step spread over the machine's cores:
//! the series of a vector are cut into one contiguous stretch per core,
//! each mapped on a scoped thread, and the results put back in order.
//! Small inputs stay on the calling thread (a thread costs tens of µs).

use std::sync::OnceLock;

/// Below this much work (series × steps), one thread does it all.
const MIN_PARALLEL_WORK: usize = 100_000;

fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `items.iter().filter_map(f)`, in order, on several threads when
/// `items.len() × steps` is large.
pub fn filter_map_series<T: Sync, R: Send>(
    items: &[T],
    steps: usize,
    f: impl Fn(&T) -> Option<R> + Sync,
) -> Vec<R> {
    let threads = cores().min(items.len());
    if threads <= 1 || items.len().saturating_mul(steps) < MIN_PARALLEL_WORK {
        return items.iter().filter_map(f).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(per_thread)
            .map(|part| scope.spawn(move || part.iter().filter_map(f).collect::<Vec<R>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|part| part.join().expect("series worker panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_order_of_the_series() {
        let items: Vec<usize> = (0..10_001).collect();
        for steps in [1, 1_000] {
            let out = filter_map_series(&items, steps, |&i| (i % 3 != 0).then_some(i * 2));
            let want: Vec<usize> = items
                .iter()
                .filter(|&&i| i % 3 != 0)
                .map(|i| i * 2)
                .collect();
            assert_eq!(out, want);
        }
    }
}
