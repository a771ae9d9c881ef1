//! The worker's memory allocator, in place of std's dlmalloc (5.8 KB of
//! code, 2.7 KB of the bundle's gzip): blocks whose sizes are powers of
//! two, one free list per size, memory taken from the wasm a page at a time.
//!
//! What the worker allocates is small and short-lived (records, JSON,
//! headers, the odd response body), and a worker instance lives a few
//! minutes at most before the browser stops it, so what this gives up
//! against dlmalloc is cheap here: a block is up to twice the size asked
//! for, and a freed block is only ever reused for its own size (blocks are
//! never split or merged). Wasm memory cannot shrink, under either.
//!
//! Allocating and freeing are a few instructions each, with no search.
//! The logic is generic over where pages come from, so the host's tests run
//! it on real memory; on wasm32 the pages come from `memory.grow`.

use std::cell::Cell;

/// The smallest block: room for the free list's link, and aligned for
/// anything the worker stores (wasm's largest alignment is 16).
const MIN: usize = 16;
/// A wasm page, the unit memory grows by.
pub const PAGE: usize = 65536;
/// Block sizes from `MIN` to half the address space.
const CLASSES: usize = usize::BITS as usize - MIN.trailing_zeros() as usize;

/// The size class that serves `size` bytes aligned to `align`: blocks of
/// `MIN << class` bytes. A block is aligned to its own size (up to a
/// page; larger blocks are whole pages), so the class only has to be as
/// large as the alignment. `None` past what the address space can hold.
pub fn class(size: usize, align: usize) -> Option<usize> {
    let block = size.max(align).max(MIN).checked_next_power_of_two()?;
    let c = (block.trailing_zeros() - MIN.trailing_zeros()) as usize;
    (c < CLASSES).then_some(c)
}

/// Where fresh memory comes from.
pub trait Pages {
    /// Adds `n` zeroed pages and returns the address of the first (page
    /// aligned), or `None` when there is no more.
    fn grow(&self, n: usize) -> Option<usize>;
}

pub struct Heap<P> {
    pages: P,
    /// The first free block of each class; each free block holds the
    /// address of the next (0 ends the list).
    free: [Cell<usize>; CLASSES],
    /// Blocks under a page are cut from `next..end`, the rest of the last
    /// page taken.
    next: Cell<usize>,
    end: Cell<usize>,
    /// Bytes in blocks handed out and not freed (whole blocks): what the
    /// worker holds, for `status().workerHeapBytes`.
    in_use: Cell<usize>,
}

impl<P: Pages> Heap<P> {
    pub const fn new(pages: P) -> Self {
        Heap {
            pages,
            free: [const { Cell::new(0) }; CLASSES],
            next: Cell::new(0),
            end: Cell::new(0),
            in_use: Cell::new(0),
        }
    }

    /// Bytes in blocks allocated and not yet freed.
    pub fn in_use(&self) -> usize {
        self.in_use.get()
    }

    /// # Safety
    /// As `GlobalAlloc::alloc`: `align` is a power of two. Not for use from
    /// two threads at once (a wasm worker has one).
    pub unsafe fn alloc(&self, size: usize, align: usize) -> *mut u8 {
        let Some(c) = class(size, align) else { return std::ptr::null_mut() };
        let at = unsafe { self.take(c) };
        if !at.is_null() {
            self.in_use.set(self.in_use.get() + (MIN << c));
        }
        at
    }

    /// A block of class `c`: a freed one, else fresh memory.
    unsafe fn take(&self, c: usize) -> *mut u8 {
        let head = self.free[c].get();
        if head != 0 {
            // SAFETY: `head` is a free block of this class, which holds the
            // next one's address in its first word (`dealloc`).
            self.free[c].set(unsafe { *(head as *const usize) });
            return head as *mut u8;
        }
        let block = MIN << c;
        if block >= PAGE {
            return self.pages.grow(block / PAGE).map_or(std::ptr::null_mut(), |at| at as *mut u8);
        }
        // Aligned to its size; the gap skipped (if any) stays unused.
        let mut at = (self.next.get() + block - 1) & !(block - 1);
        if at + block > self.end.get() {
            let Some(page) = self.pages.grow(1) else { return std::ptr::null_mut() };
            if page != self.end.get() {
                // Not right after the last page: start afresh there (a
                // page is aligned for every block under a page).
                at = page;
            }
            self.end.set(page + PAGE);
        }
        self.next.set(at + block);
        at as *mut u8
    }

    /// # Safety
    /// As `GlobalAlloc::dealloc`: `ptr` came from `alloc` (or `realloc`)
    /// of this heap with the same `size` and `align`.
    pub unsafe fn dealloc(&self, ptr: *mut u8, size: usize, align: usize) {
        let Some(c) = class(size, align) else { return };
        self.in_use.set(self.in_use.get() - (MIN << c));
        // SAFETY: the block is ours again and at least `MIN` bytes.
        unsafe { *(ptr as *mut usize) = self.free[c].get() };
        self.free[c].set(ptr as usize);
    }

    /// # Safety
    /// As `GlobalAlloc::realloc`.
    pub unsafe fn realloc(&self, ptr: *mut u8, size: usize, align: usize, new_size: usize) -> *mut u8 {
        if class(size, align) == class(new_size, align) {
            return ptr; // the block already has room
        }
        // SAFETY: as the caller's contract; the two blocks are distinct.
        unsafe {
            let new = self.alloc(new_size, align);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, size.min(new_size));
                self.dealloc(ptr, size, align);
            }
            new
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::{Heap, Pages, PAGE};
    use std::alloc::{GlobalAlloc, Layout};

    struct Memory;

    impl Pages for Memory {
        fn grow(&self, n: usize) -> Option<usize> {
            let before = std::arch::wasm32::memory_grow(0, n);
            (before != usize::MAX).then_some(before * PAGE)
        }
    }

    struct Global(Heap<Memory>);

    // SAFETY: the worker's wasm has one thread (no shared memory, no
    // atomics), so the heap's cells are never touched from two at once.
    unsafe impl Sync for Global {}

    unsafe impl GlobalAlloc for Global {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            unsafe { self.0.alloc(layout.size(), layout.align()) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { self.0.dealloc(ptr, layout.size(), layout.align()) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            unsafe { self.0.realloc(ptr, layout.size(), layout.align(), new_size) }
        }
    }

    #[global_allocator]
    static HEAP: Global = Global(Heap::new(Memory));

    /// Bytes the worker's heap holds now.
    pub fn in_use() -> usize {
        HEAP.0.in_use()
    }
}

#[cfg(target_arch = "wasm32")]
pub use wasm::in_use;

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::Layout;

    /// Pages from one real allocation, handed out in order (with a hole
    /// when asked, as if something else had grown the memory meanwhile).
    struct Arena {
        base: usize,
        pages: usize,
        used: Cell<usize>,
        hole: Cell<bool>,
    }

    impl Arena {
        fn new(pages: usize) -> Arena {
            let layout = Layout::from_size_align(pages * PAGE, PAGE).unwrap();
            // SAFETY: a non-zero size. Leaked: the test process ends.
            let base = unsafe { std::alloc::alloc_zeroed(layout) } as usize;
            assert_ne!(base, 0);
            Arena { base, pages, used: Cell::new(0), hole: Cell::new(false) }
        }
    }

    impl Pages for &Arena {
        fn grow(&self, n: usize) -> Option<usize> {
            if self.hole.replace(false) {
                self.used.set(self.used.get() + 1);
            }
            let first = self.used.get();
            (first + n <= self.pages).then(|| {
                self.used.set(first + n);
                self.base + first * PAGE
            })
        }
    }

    #[test]
    fn classes_are_powers_of_two_from_sixteen_bytes() {
        assert_eq!(class(0, 1), Some(0));
        assert_eq!(class(1, 1), Some(0));
        assert_eq!(class(16, 8), Some(0));
        assert_eq!(class(17, 1), Some(1));
        assert_eq!(class(32, 1), Some(1));
        assert_eq!(class(8, 64), Some(2), "alignment sets the class as well");
        assert_eq!(class(PAGE, 1), Some(12));
        assert_eq!(class(usize::MAX, 1), None);
        assert_eq!(class(usize::MAX / 2 + 2, 1), None);
    }

    #[test]
    fn blocks_are_aligned_distinct_and_keep_their_bytes() {
        let arena = Arena::new(512);
        let heap = Heap::new(&arena);
        let mut live: Vec<(usize, usize, usize, u8)> = Vec::new();
        // Sizes from 1 byte to past a page, interleaved, each filled with
        // its own byte.
        for i in 0..400usize {
            let size = [1, 7, 16, 24, 100, 1000, 5000, 40_000, 70_000][i % 9];
            let align = [1, 2, 4, 8, 16, 32][i % 6];
            let p = unsafe { heap.alloc(size, align) } as usize;
            assert_ne!(p, 0, "allocation {i} of {size} bytes failed");
            assert_eq!(p % align, 0);
            unsafe { std::ptr::write_bytes(p as *mut u8, i as u8, size) };
            live.push((p, size, align, i as u8));
            if i % 3 == 0 {
                let (q, qsize, qalign, _) = live.remove(live.len() / 2);
                unsafe { heap.dealloc(q as *mut u8, qsize, qalign) };
            }
        }
        live.sort();
        for w in live.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "blocks overlap: {:?} and {:?}", w[0], w[1]);
        }
        for &(p, size, _, fill) in &live {
            let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, size) };
            assert!(bytes.iter().all(|&b| b == fill), "the block at {p:#x} was written by another");
        }
    }

    #[test]
    fn a_freed_block_serves_the_next_request_of_its_class() {
        let arena = Arena::new(8);
        let heap = Heap::new(&arena);
        unsafe {
            let a = heap.alloc(100, 8);
            let b = heap.alloc(120, 8);
            heap.dealloc(a, 100, 8);
            assert_eq!(heap.alloc(128, 1), a, "same class (128 B), most recently freed first");
            assert_ne!(heap.alloc(100, 8), b);
            let big = heap.alloc(3 * PAGE, 1);
            heap.dealloc(big, 3 * PAGE, 1);
            assert_eq!(heap.alloc(4 * PAGE, 1), big, "large blocks are reused too");
        }
    }

    #[test]
    fn realloc_keeps_the_bytes_and_the_block_while_it_fits() {
        let arena = Arena::new(8);
        let heap = Heap::new(&arena);
        unsafe {
            let p = heap.alloc(20, 1);
            std::ptr::copy_nonoverlapping(b"twenty bytes of text".as_ptr(), p, 20);
            assert_eq!(heap.realloc(p, 20, 1, 32), p, "32 B fits the same block");
            let q = heap.realloc(p, 32, 1, 300);
            assert_ne!(q, p);
            assert_eq!(std::slice::from_raw_parts(q, 20), b"twenty bytes of text");
            let r = heap.realloc(q, 300, 1, 5);
            assert_eq!(std::slice::from_raw_parts(r, 5), b"twent");
            assert_eq!(heap.alloc(30, 1), p, "the first block was freed by the move");
        }
    }

    #[test]
    fn memory_that_is_not_contiguous_starts_a_new_run() {
        let arena = Arena::new(8);
        let heap = Heap::new(&arena);
        unsafe {
            let first = heap.alloc(PAGE / 2, 1) as usize;
            arena.hole.set(true);
            let second = heap.alloc(PAGE / 2, 1) as usize; // still in the first page
            let third = heap.alloc(PAGE / 2, 1) as usize; // a new page, after the hole
            assert_eq!(second, first + PAGE / 2);
            assert_eq!(third, first + 2 * PAGE);
            assert_eq!(third % PAGE, 0);
        }
    }

    #[test]
    fn what_is_in_use_is_counted_in_whole_blocks() {
        let arena = Arena::new(8);
        let heap = Heap::new(&arena);
        unsafe {
            let a = heap.alloc(100, 8);
            let b = heap.alloc(3, 1);
            assert_eq!(heap.in_use(), 128 + 16);
            let a = heap.realloc(a, 100, 8, 120);
            assert_eq!(heap.in_use(), 128 + 16, "the same block");
            let a = heap.realloc(a, 120, 8, 1000);
            assert_eq!(heap.in_use(), 1024 + 16);
            heap.dealloc(a, 1000, 8);
            heap.dealloc(b, 3, 1);
            assert_eq!(heap.in_use(), 0);
            assert!(heap.alloc(16 * PAGE, 1).is_null());
            assert_eq!(heap.in_use(), 0, "a failed allocation holds nothing");
        }
    }

    #[test]
    fn no_memory_left_is_a_null_pointer() {
        let arena = Arena::new(2);
        let heap = Heap::new(&arena);
        unsafe {
            assert!(heap.alloc(3 * PAGE, 1).is_null());
            assert!(!heap.alloc(2 * PAGE, 1).is_null());
            assert!(heap.alloc(8, 1).is_null());
        }
    }
}
