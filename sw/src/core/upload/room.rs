//! Room for files on the device: the blob budget, the browser's quota, and
//! which kept files go (least recently used, never one not yet uploaded).
//! The messages a page gets when a file does not fit are made here too.

use crate::core::text::{cat, num};
use crate::core::wire::wire_struct;

/// Whether a failed write of `incoming` bytes is the browser's quota, by
/// what `navigator.storage.estimate()` says. Some engines report a full
/// quota as another error (Firefox: "InvalidStateError: A mutation
/// operation was attempted…", the transaction having been aborted by the
/// quota), so the name alone is not enough.
pub fn over_quota(usage: f64, quota: f64, incoming: u64) -> bool {
    quota > 0.0 && usage + incoming as f64 >= quota * 0.95
}

/// The byte budget for local blobs: the configured one, but never more than
/// 80 % of what the browser grants the origin.
pub fn blob_budget(config_budget: u64, quota: Option<u64>) -> u64 {
    match quota {
        Some(q) if q > 0 => config_budget.min(q / 10 * 8),
        _ => config_budget,
    }
}

/// What the device keeps beside each local blob.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub struct BlobMeta {
    pub size: u64,
    pub last_used: u64,
    /// The server does not have it yet: never evicted.
    pub pinned: bool,
    /// The origin's asset id, once known.
    pub asset_id: Option<String>,
    pub user: Option<String>,
    pub content_type: String,
}

wire_struct!(BlobMeta { size, last_used, pinned, asset_id, user, content_type });

/// The outcome of planning room for `incoming` bytes (0: just tidy up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Keys to evict, least recently used first.
    pub evict: Vec<String>,
    pub freed_bytes: u64,
    /// Usage after eviction, the incoming bytes included.
    pub usage: u64,
    /// Whether the incoming bytes fit within the budget after eviction.
    pub fits: bool,
}

/// What a plan makes room for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Make {
    /// `incoming` bytes (0: just tidy up) within the budget.
    RoomFor(u64),
    /// The browser's own quota refused a file: every file safe on the
    /// server goes, whatever the budget.
    AllEvictable,
}

/// Past 90 % of the budget, blobs safe on the server go, least recently
/// used first, until usage is at 70 %; pinned blobs never go.
pub fn plan_room(blobs: &[(String, BlobMeta)], budget: u64, make: Make) -> Room {
    let (budget, incoming) = match make {
        Make::RoomFor(incoming) => (budget, incoming),
        Make::AllEvictable => (0, 0),
    };
    use crate::core::evict::{plan, Budget, Item};
    let mut items: Vec<Item<Option<&str>>> = Vec::with_capacity(blobs.len() + 1);
    for (k, m) in blobs {
        items.push(Item { key: Some(k.as_str()), size: m.size, last_used: m.last_used, evictable: !m.pinned });
    }
    if incoming > 0 {
        items.push(Item { key: None, size: incoming, last_used: u64::MAX, evictable: false });
    }
    let many = u64::MAX;
    let high = Budget { entries: many, bytes: budget / 10 * 9 };
    let low = Budget { entries: many, bytes: budget / 10 * 7 };
    let p = plan(&items, high, low);
    let mut evict = Vec::with_capacity(p.evict.len());
    // Not `.flatten()`: its adapter is compiled for this one loop.
    #[allow(clippy::manual_flatten)]
    for k in &p.evict {
        if let Some(k) = k {
            evict.push(k.to_string());
        }
    }
    Room { evict, freed_bytes: p.freed_bytes, usage: p.bytes, fits: p.bytes <= budget }
}

/// `bytes` in MiB with one decimal, rounded half up, in integers (`u64`:
/// `u128` would link its own division and formatting into the wasm). Float
/// formatting is linked anyway by other code today (see BENCH.md, "What
/// the wasm is made of"), so this saves nothing yet, but it is one user
/// less to remove.
fn mib(bytes: u64) -> String {
    const MIB: u64 = 1_048_576;
    let (mut whole, mut tenths) = (bytes / MIB, ((bytes % MIB) * 10 + MIB / 2) / MIB);
    if tenths == 10 {
        whole += 1;
        tenths = 0;
    }
    cat!(num(whole), ".", num(tenths), " MiB")
}

/// Over the budget even after eviction: nothing stored is touched, and the
/// page hears why. `room`: the plan that did not fit.
pub fn no_room(incoming: u64, budget: u64, room: &Room) -> String {
    cat!(
        "No room on this device for ",
        mib(incoming),
        ": the budget is ",
        mib(budget),
        " and ",
        mib(room.usage.saturating_sub(incoming)),
        " is taken by files not yet uploaded. \
         Wait for pending uploads to finish, or raise blobBudgetBytes.",
    )
}

/// The browser's quota refused the file even after every evictable file went.
pub fn quota_refused(size: u64) -> String {
    cat!(
        "The browser refused to store ",
        mib(size),
        " more on this device (quota exceeded), even after evicting every file \
         already safe on the server. Free some space or upload a smaller file.",
    )
}

/// IndexedDB would take neither the Blob nor its bytes.
pub fn storage_refused(size: u64) -> String {
    cat!(
        "This browser refused to keep the file on the device (IndexedDB would store neither the file nor its ",
        mib(size),
        " of bytes; private windows can do that). Upload it without going offline, or use a normal window.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(size: u64, last_used: u64, pinned: bool) -> BlobMeta {
        BlobMeta { size, last_used, pinned, asset_id: None, user: None, content_type: "x/y".into() }
    }

    #[test]
    fn room_is_made_from_the_least_recently_used_safe_blobs() {
        let blobs = vec![
            ("a".to_string(), blob(30, 5, false)),
            ("b".to_string(), blob(30, 1, false)),
            ("p".to_string(), blob(30, 0, true)),
        ];
        // 90 of 100 used: at the high watermark, nothing to do.
        let r = plan_room(&blobs, 100, Make::RoomFor(0));
        assert!(r.evict.is_empty() && r.fits);
        // 20 more: over 90, down to 70 → b then a go; the pinned one stays.
        let r = plan_room(&blobs, 100, Make::RoomFor(20));
        assert_eq!(r.evict, ["b", "a"]);
        assert_eq!((r.usage, r.fits), (50, true));
        // Pinned bytes plus the incoming file over the budget: it does not fit.
        let r = plan_room(&blobs, 100, Make::RoomFor(80));
        assert!(!r.fits);
        assert!(no_room(80, 100, &r).contains("budget is 0.0 MiB"), "{}", no_room(80, 100, &r));
        for (bytes, shown) in [
            (0, "0.0"),
            (1_048_576, "1.0"),
            (1_572_864, "1.5"),
            (52_428, "0.0"),
            (52_429, "0.1"),
            (10 << 30, "10240.0"),
            (u64::MAX, "17592186044416.0"),
        ] {
            assert_eq!(mib(bytes), format!("{shown} MiB"), "{bytes}");
        }
        // The browser's quota said no: every safe file goes, however small the use.
        let r = plan_room(&blobs, 1_000_000, Make::AllEvictable);
        assert_eq!((r.evict.len(), r.freed_bytes), (2, 60));
    }

    /// Time of the planner on 10,000 blobs, on demand:
    /// `cargo test -p outpost-sw --release -- --ignored --nocapture planner_time`.
    #[test]
    #[ignore = "a measurement: run on demand"]
    fn planner_time_on_ten_thousand_blobs() {
        let blobs: Vec<(String, BlobMeta)> = (0..10_000u64)
            .map(|i| {
                (format!("local-{i:036}"), blob(1_000 + (i * 7919) % 50_000, (i * 104_729) % 1_000_003, i % 10 == 0))
            })
            .collect();
        let total: u64 = blobs.iter().map(|b| b.1.size).sum();
        let rounds = 200;
        let start = std::time::Instant::now();
        let mut evicted = 0;
        for _ in 0..rounds {
            evicted = plan_room(std::hint::black_box(&blobs), total / 2, Make::RoomFor(1_000_000)).evict.len();
        }
        let each = start.elapsed() / rounds;
        println!("plan_room on 10,000 blobs: {each:?} per plan ({evicted} evicted)");
    }

    /// The planner on 10,000 blobs, a tenth of them pinned: nothing pinned
    /// goes, usage ends at or under the low watermark.
    #[test]
    fn ten_thousand_blobs() {
        let blobs: Vec<(String, BlobMeta)> = (0..10_000u64)
            .map(|i| (format!("k{i}"), blob(1_000 + (i * 7919) % 50_000, (i * 104_729) % 1_000_003, i % 10 == 0)))
            .collect();
        let total: u64 = blobs.iter().map(|b| b.1.size).sum();
        let r = plan_room(&blobs, total / 2, Make::RoomFor(1_000_000));
        assert!(r.fits);
        assert!(r.usage <= total / 2 / 10 * 7);
        let pinned: std::collections::HashSet<&str> =
            blobs.iter().filter(|b| b.1.pinned).map(|b| b.0.as_str()).collect();
        assert!(r.evict.iter().all(|k| !pinned.contains(k.as_str())));
    }
}
