//! The process allocator: the system allocator, except that very large
//! allocations only reserve address space.
//!
//! Why: the `kafka-protocol` codec (0.18) sizes each array's `Vec` from the
//! length the *client* declares before reading a single element, so a
//! 20-byte request declaring two billion topics asks for hundreds of GB. The
//! system allocator refuses, and Rust aborts the process: one client could
//! stop the broker. Allocations of 1 GiB or more are therefore served by an
//! anonymous `mmap` with `MAP_NORESERVE`: the kernel hands out address space
//! without committing memory, the decoder then fails on the missing bytes,
//! and the reservation is unmapped untouched. Nothing Millrace legitimately
//! allocates comes near this size (the largest buffers are bounded by
//! `socket.request.max.bytes` and `fetch.max.bytes`, 100 MiB and 50 MiB by
//! default). Remove this once the codec bounds capacities by the bytes
//! present (upstream kafka-protocol-rs PRs #152/#161/#200).

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Allocations at or above this size are address-space reservations.
const RESERVE_THRESHOLD: usize = 1 << 30;
/// mmap returns page-aligned memory; stricter alignments use `System`.
const PAGE_ALIGN: usize = 4096;

/// See the module documentation.
pub struct ReservingAllocator;

fn reserved(layout: &Layout) -> bool {
    layout.size() >= RESERVE_THRESHOLD && layout.align() <= PAGE_ALIGN
}

// SAFETY: every method upholds the GlobalAlloc contract: small layouts go to
// `System` unchanged; reserved layouts are fresh private anonymous mappings
// of at least `size` bytes, page-aligned (>= the layout's alignment),
// zero-filled, and unmapped only with the same size they were mapped with
// (the caller passes the original layout to `dealloc`).
unsafe impl GlobalAlloc for ReservingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !reserved(&layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: a new private anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            ptr::null_mut()
        } else {
            p.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !reserved(&layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.alloc_zeroed(layout) };
        }
        // SAFETY: anonymous mappings are zero-filled by the kernel.
        unsafe { self.alloc(layout) }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if !reserved(&layout) {
            // SAFETY: `p` came from `System.alloc` with this layout.
            return unsafe { System.dealloc(p, layout) };
        }
        // SAFETY: `p` is a mapping of exactly `layout.size()` bytes made by `alloc`.
        unsafe {
            libc::munmap(p.cast(), layout.size());
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        if !reserved(&layout) && !reserved(&new_layout) {
            // SAFETY: both layouts belong to `System`; forwarded unchanged.
            return unsafe { System.realloc(p, layout, new_size) };
        }
        // SAFETY: allocate the new block, copy the overlapping prefix, free the old one.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                ptr::copy_nonoverlapping(p, new, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_capacity_is_reserved_not_committed() {
        // 200 GiB: more than this machine's memory, as a hostile array
        // length would ask for; must not abort and must not touch memory.
        let layout = Layout::from_size_align(200 << 30, 8).unwrap();
        let a = ReservingAllocator;
        let p = unsafe { a.alloc(layout) };
        assert!(!p.is_null());
        unsafe {
            *p = 7;
            assert_eq!(*p, 7);
            a.dealloc(p, layout);
        }
    }

    #[test]
    fn small_allocations_round_trip() {
        let layout = Layout::from_size_align(64, 8).unwrap();
        let a = ReservingAllocator;
        unsafe {
            let p = a.alloc_zeroed(layout);
            assert_eq!(*p, 0);
            let q = a.realloc(p, layout, 128);
            assert!(!q.is_null());
            a.dealloc(q, Layout::from_size_align(128, 8).unwrap());
        }
    }
}
