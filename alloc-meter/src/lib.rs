#![doc = include_str!("../README.md")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Bytes in front of every allocation; the metered flag is its last word.
const HEADER: usize = 16;

/// The metering allocator (wraps [`System`]). Install it with `#[global_allocator]`.
#[derive(Debug)]
pub struct Meter {
    on: AtomicBool,
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl Meter {
    /// A meter that is off, with nothing counted.
    pub const fn new() -> Self {
        Self {
            on: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Runs `f` with metering on: what it allocates (on any thread) counts until it is freed.
    pub fn metered<R>(&self, f: impl FnOnce() -> R) -> R {
        self.on.store(true, Ordering::SeqCst);
        let r = f();
        self.on.store(false, Ordering::SeqCst);
        r
    }

    /// Metered bytes allocated and not yet freed.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// The largest [`Meter::live`] since the last [`Meter::reset_peak`].
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Starts a new peak from the bytes live now.
    pub fn reset_peak(&self) {
        self.peak.store(self.live(), Ordering::SeqCst);
    }

    /// The layout asked of [`System`] for a user layout, and the offset of the user's bytes in it.
    /// The offset is a multiple of the user's alignment (both are powers of two and the offset is
    /// the larger of the two) and at least [`HEADER`], so the flag word fits in front.
    fn outer(layout: Layout) -> Option<(Layout, usize)> {
        let offset = layout.align().max(HEADER);
        let size = layout.size().checked_add(offset)?;
        let outer = Layout::from_size_align(size, layout.align().max(HEADER)).ok()?;
        Some((outer, offset))
    }
}

impl Default for Meter {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every block handed out lies inside a block obtained from `System` with the layout
// `Meter::outer(layout)`, at an offset that keeps the caller's alignment, and is returned to
// `System` with that same outer layout (a pure function of the caller's layout, which
// `GlobalAlloc` guarantees is the same at `dealloc`). The counters are atomics and never affect
// what memory is handed out.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((outer, offset)) = Self::outer(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `outer` has non-zero size (it includes the header).
        let base = unsafe { System.alloc(outer) };
        if base.is_null() {
            return base;
        }
        let metered = self.on.load(Ordering::Relaxed);
        // SAFETY: `offset <= outer.size()`, so `user` is inside (or one past) the block; the flag
        // word at `user - 8` lies in the header (offset >= 16) and is 8-aligned (the block is
        // 16-aligned and the offset a multiple of 16).
        unsafe {
            let user = base.add(offset);
            user.sub(8).cast::<usize>().write(usize::from(metered));
            if metered {
                let now = self.live.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
                self.peak.fetch_max(now, Ordering::Relaxed);
            }
            user
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let (outer, offset) = Self::outer(layout).expect("the layout was valid at alloc");
        // SAFETY: `ptr` came from `alloc` with this `layout`, so it is `offset` bytes into a
        // block `System` gave us with `outer`, and its flag word was written there.
        unsafe {
            if ptr.sub(8).cast::<usize>().read() == 1 {
                self.live.fetch_sub(layout.size(), Ordering::Relaxed);
            }
            System.dealloc(ptr.sub(offset), outer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Meter;

    #[global_allocator]
    static HEAP: Meter = Meter::new();

    #[test]
    fn counts_only_metered_allocations_until_freed() {
        let outside = vec![0u8; 1 << 20];
        let before = HEAP.live();
        HEAP.reset_peak();
        let inside = HEAP.metered(|| {
            let transient = vec![1u64; 1 << 16]; // 512 KiB, freed inside
            drop(transient);
            vec![0u8; 3000]
        });
        assert!(HEAP.live() - before >= 3000);
        assert!(HEAP.peak() - before >= (1 << 19));
        drop(outside); // not metered: does not lower the count
        assert!(HEAP.live() - before >= 3000);
        drop(inside); // metered, freed with metering off: lowers it
        assert!(HEAP.live() < before + 3000);
        // Over-aligned allocations keep their alignment.
        let b = HEAP.metered(|| Box::new(Aligned([7; 64])));
        assert_eq!(&*b as *const Aligned as usize % 64, 0);
        assert_eq!(b.0[63], 7);
    }

    #[repr(align(64))]
    struct Aligned([u8; 64]);
}
