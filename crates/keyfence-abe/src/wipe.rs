//! Best-effort erasure of secret values held in foreign `Copy` types (blstrs scalars
//! and points) that do not implement `Zeroize` themselves.

use core::sync::atomic::{compiler_fence, Ordering};

/// Overwrites every element of `items` with `T::default()` using volatile writes, so
/// the compiler cannot elide the stores as dead.
pub(crate) fn wipe<T: Copy + Default>(items: &mut [T]) {
    wipe_to(items, T::default());
}

/// Overwrites every element of `items` with `value` using volatile writes.
pub(crate) fn wipe_to<T: Copy>(items: &mut [T], value: T) {
    for item in items.iter_mut() {
        // SAFETY: `item` comes from a live `&mut T`, so the pointer is valid, aligned and
        // uniquely borrowed for the write; `T: Copy` means no destructor is skipped by
        // overwriting the old value in place.
        unsafe { core::ptr::write_volatile(item as *mut T, value) };
    }
    compiler_fence(Ordering::SeqCst);
}
