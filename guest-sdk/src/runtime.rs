//! What a `no_std` hook needs from outside the standard library: an allocator,
//! a panic handler, `cabi_realloc` for the component model, and `memcmp`.
//!
//! A hook's instance serves one request and is then thrown away, so the
//! allocator is an arena: it hands out memory upwards from the end of the
//! module's data (`__heap_base`), gives back only the latest allocation (and
//! grows or shrinks that one in place), and grows the linear memory when it
//! runs out. The memory cap of the hook association still bounds it.
#![expect(
    unsafe_code,
    reason = "a global allocator, `no_mangle` C symbols and the linker's `__heap_base` are unsafe by nature"
)]

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::sync::atomic::{AtomicUsize, Ordering};

const PAGE: usize = 65536;

unsafe extern "C" {
    /// The first byte after the module's data and stack, set by `wasm-ld`.
    static __heap_base: u8;
}

/// The next free byte (0 before the first allocation) and the end of memory.
static NEXT: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);

struct Arena;

impl Arena {
    /// Makes `[.., end)` usable, growing the memory if needed.
    fn reserve(end: usize) -> bool {
        let have = END.load(Ordering::Relaxed);
        if end <= have {
            return true;
        }
        let pages = (end - have).div_ceil(PAGE);
        if wasm32::memory_grow(0, pages) == usize::MAX {
            return false;
        }
        END.store(wasm32::memory_size(0) * PAGE, Ordering::Relaxed);
        true
    }

    fn next() -> usize {
        match NEXT.load(Ordering::Relaxed) {
            0 => {
                END.store(wasm32::memory_size(0) * PAGE, Ordering::Relaxed);
                core::ptr::addr_of!(__heap_base) as usize
            }
            next => next,
        }
    }
}

unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let start = Self::next().next_multiple_of(layout.align());
        let Some(end) = start.checked_add(layout.size()) else {
            return core::ptr::null_mut();
        };
        if !Self::reserve(end) {
            return core::ptr::null_mut();
        }
        NEXT.store(end, Ordering::Relaxed);
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Only the latest allocation can be given back.
        if ptr as usize + layout.size() == NEXT.load(Ordering::Relaxed) {
            NEXT.store(ptr as usize, Ordering::Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let start = ptr as usize;
        if start + layout.size() == NEXT.load(Ordering::Relaxed) {
            // The latest allocation grows or shrinks where it is.
            let Some(end) = start.checked_add(new_size) else {
                return core::ptr::null_mut();
            };
            if !Self::reserve(end) {
                return core::ptr::null_mut();
            }
            NEXT.store(end, Ordering::Relaxed);
            return ptr;
        }
        // SAFETY: the caller's `layout` is valid; the new one has its alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as for `alloc`.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live and at least this long; they are
            // distinct (the new one lies past the old).
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}

#[global_allocator]
static ARENA: Arena = Arena;

/// The component model's allocation entry point (the standard library's
/// wasi-libc would provide it otherwise).
#[unsafe(no_mangle)]
unsafe extern "C" fn cabi_realloc(
    old: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    if new_len == 0 {
        return align as *mut u8;
    }
    let ptr = if old_len == 0 {
        // SAFETY: the canonical ABI passes a power-of-two alignment.
        unsafe { ARENA.alloc(Layout::from_size_align_unchecked(new_len, align)) }
    } else {
        // SAFETY: `old` was allocated here with this size and alignment.
        unsafe {
            ARENA.realloc(
                old,
                Layout::from_size_align_unchecked(old_len, align),
                new_len,
            )
        }
    };
    if ptr.is_null() {
        wasm32::unreachable();
    }
    ptr
}

/// Byte comparison, which `core` calls for slices and strings.
#[unsafe(no_mangle)]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: the caller passes two readable ranges of `n` bytes.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// `memcmp` when only equality matters.
#[unsafe(no_mangle)]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: as for `memcmp`.
    unsafe { memcmp(a, b, n) }
}

/// A panic ends the invocation: its message goes to the host's log (tagged
/// with the request id and the hook), then the instance traps, which fails
/// this request alone.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // Formatting the message allocates; a panic on the way (memory ran out)
    // traps at once.
    static PANICKING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if !PANICKING.swap(true, Ordering::Relaxed) {
        crate::log::error(&alloc::format!("panicked: {info}"));
    }
    wasm32::unreachable()
}
