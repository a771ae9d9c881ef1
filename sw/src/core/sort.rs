//! Sorting the few short lists the worker sorts (an eviction order, the
//! uploads, the outbox's queue heads, a read's headers). std's unstable
//! sort, built for size, is a heapsort compiled once per element type:
//! about 230 B of wasm each, six of them. An insertion sort is a third of
//! that per type, and these lists are short (a few hundred items at most,
//! the read copies an eviction orders), or already in order, where it makes
//! one pass.

/// Sorts `v` so that no item is `less` than the one before it; items that
/// compare equal keep their order.
pub fn sort_by<T>(v: &mut [T], mut less: impl FnMut(&T, &T) -> bool) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && less(&v[j], &v[j - 1]) {
            v.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// Sorts `v` in ascending order.
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, |a, b| a < b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_as_std_does() {
        // A small deterministic generator: no dependency for a test.
        let mut seed = 0x2545_f491_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for len in [0, 1, 2, 3, 10, 100, 600] {
            let mut v: Vec<(u64, usize)> = (0..len).map(|i| (next() % 50, i)).collect();
            let mut want = v.clone();
            want.sort();
            sort(&mut v);
            assert_eq!(v, want, "len {len}");
            // Stable: by the first field only, the second keeps its order.
            let mut by_first: Vec<(u64, usize)> = (0..len).map(|i| (next() % 5, i)).collect();
            let mut want = by_first.clone();
            want.sort_by_key(|p| p.0);
            sort_by(&mut by_first, |a, b| a.0 < b.0);
            assert_eq!(by_first, want);
        }
        let mut words = vec!["b", "a", "c", "a"];
        sort(&mut words);
        assert_eq!(words, ["a", "a", "b", "c"]);
    }
}
