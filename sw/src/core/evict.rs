//! Least-recently-used eviction planning, for cached reads and blobs.
//!
//! The planner only picks: the web side deletes what it names. Items that
//! may not go (a blob the server does not have yet) are counted in the
//! usage but never picked.

/// One stored thing, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<K> {
    pub key: K,
    pub size: u64,
    pub last_used: u64,
    pub evictable: bool,
}

/// A number of entries and of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub entries: u64,
    pub bytes: u64,
}

impl Budget {
    fn holds(&self, entries: u64, bytes: u64) -> bool {
        entries <= self.entries && bytes <= self.bytes
    }
}

/// What to evict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<K> {
    /// Oldest first.
    pub evict: Vec<K>,
    pub freed_bytes: u64,
    /// Usage after the plan.
    pub entries: u64,
    pub bytes: u64,
    /// Even after evicting everything evictable, usage is above `high`.
    pub short: bool,
}

/// Nothing happens while usage is within `high`; past it, least recently
/// used evictable items go until usage is within `low` (a low watermark
/// below the high one keeps eviction from running on every write).
pub fn plan<K: Clone>(items: &[Item<K>], high: Budget, low: Budget) -> Plan<K> {
    let mut entries = items.len() as u64;
    let mut bytes: u64 = 0;
    // (time, position): sorted, the earlier listed goes first among equal
    // times, as a stable sort would; and one sort serves every kind of key.
    let mut order: Vec<(u64, usize)> = Vec::with_capacity(items.len());
    for (at, i) in items.iter().enumerate() {
        bytes += i.size;
        if i.evictable {
            order.push((i.last_used, at));
        }
    }
    let mut out = Plan { evict: Vec::new(), freed_bytes: 0, entries, bytes, short: false };
    if high.holds(entries, bytes) {
        return out;
    }
    super::sort::sort(&mut order);
    for &(_, at) in &order {
        let item = &items[at];
        if low.holds(entries, bytes) {
            break;
        }
        entries -= 1;
        bytes -= item.size;
        out.freed_bytes += item.size;
        out.evict.push(item.key.clone());
    }
    out.entries = entries;
    out.bytes = bytes;
    out.short = !high.holds(entries, bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: u32, size: u64, last_used: u64, evictable: bool) -> Item<u32> {
        Item { key, size, last_used, evictable }
    }

    const fn b(entries: u64, bytes: u64) -> Budget {
        Budget { entries, bytes }
    }

    #[test]
    fn nothing_while_within_the_high_watermark() {
        let items = [item(1, 50, 1, true), item(2, 50, 2, true)];
        let p = plan(&items, b(10, 100), b(10, 10));
        assert!(p.evict.is_empty());
        assert!(!p.short);
    }

    #[test]
    fn least_recently_used_first_down_to_the_low_watermark() {
        let items = [item(1, 40, 30, true), item(2, 40, 10, true), item(3, 40, 20, true), item(4, 40, 40, true)];
        let p = plan(&items, b(10, 150), b(10, 80));
        assert_eq!(p.evict, [2, 3]);
        assert_eq!((p.freed_bytes, p.bytes, p.entries), (80, 80, 2));
        assert!(!p.short);
        // By count as well as bytes.
        let p = plan(&items, b(3, 1_000), b(2, 1_000));
        assert_eq!(p.evict, [2, 3]);
    }

    #[test]
    fn pinned_items_are_never_picked() {
        let items = [item(1, 100, 1, false), item(2, 10, 2, true), item(3, 100, 3, false)];
        let p = plan(&items, b(10, 150), b(10, 100));
        assert_eq!(p.evict, [2]);
        assert_eq!(p.bytes, 200);
        assert!(p.short, "pinned bytes alone are over the budget");
    }

    /// Many items, random sizes and times: the plan never picks a pinned
    /// item, ends within `low` unless short, and every evicted item is no
    /// more recently used than any evictable item kept.
    #[test]
    fn invariants_hold_on_a_large_random_set() {
        let mut seed = 0x2545_f491_u64;
        let mut rand = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let items: Vec<Item<u32>> =
            (0..10_000).map(|k| item(k, rand() % 1_000_000, rand() % 1_000_000, rand() % 10 != 0)).collect();
        let total: u64 = items.iter().map(|i| i.size).sum();
        let low = b(10_000, total / 3);
        let p = plan(&items, b(10_000, total / 2), low);
        let gone: std::collections::HashSet<u32> = p.evict.iter().copied().collect();
        assert!(items.iter().filter(|i| gone.contains(&i.key)).all(|i| i.evictable));
        assert!(p.short || p.bytes <= low.bytes);
        let newest_gone = items.iter().filter(|i| gone.contains(&i.key)).map(|i| i.last_used).max().unwrap();
        let oldest_kept =
            items.iter().filter(|i| i.evictable && !gone.contains(&i.key)).map(|i| i.last_used).min().unwrap();
        assert!(newest_gone <= oldest_kept);
        assert_eq!(p.bytes + p.freed_bytes, total);
    }
}
