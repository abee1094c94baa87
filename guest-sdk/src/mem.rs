//! A word-at-a-time `memcmp` for guests.
//!
//! Rust compares strings and byte slices (`BTreeMap<String, _>` lookups on
//! labels and annotations, `==` on names) through libc's `memcmp`. In a
//! `wasm32-wasip2` component that is wasi-libc's, a loop over single bytes:
//! decoding a 100 KB object whose annotations share a prefix spent 40% of
//! the call there (`cargo bench -p bosun --bench reconcile`, 1.10 ms → 0.67
//! ms with this one). Defining the symbol in the SDK links this one instead,
//! in every guest, with nothing for authors to do.

use core::ffi::c_int;

const WORD: usize = 8;

/// Compares `n` bytes at `a` and `b` as C's `memcmp` does (as unsigned
/// bytes, the first difference decides), eight bytes at a time.
///
/// # Safety
///
/// `a` and `b` each point to `n` readable bytes.
unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> c_int {
    let mut at = 0;
    while at + WORD <= n {
        // SAFETY: at + 8 <= n. Plain loads: copying the bytes into an array
        // may compile to a call to memcpy, which costs more than comparing.
        let (x, y) = unsafe {
            (
                a.add(at).cast::<u64>().read_unaligned(),
                b.add(at).cast::<u64>().read_unaligned(),
            )
        };
        if x != y {
            // In a little-endian word the lowest differing byte is the
            // first differing byte in memory.
            let shift = (u64::from_le(x) ^ u64::from_le(y)).trailing_zeros() & !7;
            return c_int::from((u64::from_le(x) >> shift) as u8)
                - c_int::from((u64::from_le(y) >> shift) as u8);
        }
        at += WORD;
    }
    while at < n {
        // SAFETY: at < n.
        let (x, y) = unsafe { (*a.add(at), *b.add(at)) };
        if x != y {
            return c_int::from(x) - c_int::from(y);
        }
        at += 1;
    }
    0
}

/// The C `memcmp` every comparison in a guest links to.
///
/// # Safety
///
/// As C's: `a` and `b` each point to `n` readable bytes.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> c_int {
    // SAFETY: the caller's promise, passed on.
    unsafe { compare(a, b, n) }
}

#[cfg(test)]
mod tests {
    fn compare(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
        assert_eq!(a.len(), b.len());
        // SAFETY: both slices hold a.len() bytes.
        unsafe { super::compare(a.as_ptr(), b.as_ptr(), a.len()) }.cmp(&0)
    }

    /// Every position of a first difference, in the words and in the tail,
    /// with bytes on both sides of 0x80 (unsigned, as C compares them).
    #[test]
    fn orders_as_byte_slices_do() {
        for len in 0..40 {
            let base: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            assert_eq!(compare(&base, &base), std::cmp::Ordering::Equal);
            for at in 0..len {
                for (x, y) in [(0x00, 0xff), (0x7f, 0x80), (0x41, 0x42), (0xfe, 0x01)] {
                    let mut a = base.clone();
                    let mut b = base.clone();
                    a[at] = x;
                    b[at] = y;
                    // A later difference the other way must not matter.
                    if at + 1 < len {
                        a[at + 1] = 0xff;
                        b[at + 1] = 0x00;
                    }
                    assert_eq!(compare(&a, &b), a.cmp(&b), "len {len}, at {at}, {x} vs {y}");
                    assert_eq!(compare(&b, &a), b.cmp(&a), "len {len}, at {at}, {y} vs {x}");
                }
            }
        }
    }
}
