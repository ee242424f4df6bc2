//! Owned buffers for AIO.
//!
//! An AIO request runs on another thread while the future that started it may be
//! dropped: the buffer must be owned by the request, not borrowed. The positioned
//! operations take a buffer by value and hand it back with the result, as
//! [`BufResult`](crate::BufResult).
//!
//! [`IoBuf`] is a buffer the OS may read from (writes); [`IoBufMut`] one it may
//! write into (reads). [`AlignedBuf`] has a chosen alignment, for `O_DIRECT`.

mod aligned;

pub use aligned::AlignedBuf;

/// A buffer whose bytes a write may read, at an address that does not change
/// when the value is moved.
///
/// # Safety
///
/// The implementer promises that:
///
/// - [`stable_ptr`](IoBuf::stable_ptr) points to at least
///   [`bytes_total`](IoBuf::bytes_total) bytes of memory owned by (or `'static`
///   to) the value, of which the first [`bytes_init`](IoBuf::bytes_init) are
///   initialised;
/// - the pointer and that memory stay valid and unchanged when the value is
///   moved, and until it is dropped or accessed through `&mut`;
/// - `bytes_init() <= bytes_total()`.
pub unsafe trait IoBuf: Unpin + Send + 'static {
    /// A pointer to the first byte, stable across moves.
    fn stable_ptr(&self) -> *const u8;

    /// How many bytes are initialised: a write sends this many.
    fn bytes_init(&self) -> usize;

    /// The capacity: a read fills up to this many.
    fn bytes_total(&self) -> usize;
}

/// A buffer a read may fill.
///
/// # Safety
///
/// As for [`IoBuf`]; in addition, [`stable_mut_ptr`](IoBufMut::stable_mut_ptr)
/// is valid for writes of [`bytes_total`](IoBuf::bytes_total) bytes, and
/// [`set_init`](IoBufMut::set_init) makes exactly `pos` bytes visible as the
/// buffer's contents.
pub unsafe trait IoBufMut: IoBuf {
    /// A pointer to the first byte, stable across moves, valid for writes.
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Sets the initialised length to `pos` (the `Vec`'s `len`).
    ///
    /// # Safety
    ///
    /// The first `pos` bytes must be initialised and `pos <= bytes_total()`.
    unsafe fn set_init(&mut self, pos: usize);
}

/// `IoBuf` for a type whose bytes are `as_ptr()[..len()]`, with room for
/// `$total()` (`len` or `capacity`). Each use states why the address is stable.
macro_rules! io_buf {
    ($(#[$attr:meta])* $ty:ty, $total:ident) => {
        $(#[$attr])*
        // SAFETY: the use of the macro states why the memory stays put; `len`
        // bytes from `as_ptr()` are initialised, `$total` are owned.
        unsafe impl IoBuf for $ty {
            fn stable_ptr(&self) -> *const u8 {
                self.as_ptr()
            }
            fn bytes_init(&self) -> usize {
                self.len()
            }
            fn bytes_total(&self) -> usize {
                self.$total()
            }
        }
    };
}

/// `IoBufMut` for a type whose initialised length is set with `set_len`.
macro_rules! io_buf_mut_set_len {
    ($(#[$attr:meta])* $ty:ty) => {
        $(#[$attr])*
        // SAFETY: as for its `IoBuf`; `set_len` is called only with initialised
        // bytes within the capacity (`set_init`'s contract).
        unsafe impl IoBufMut for $ty {
            fn stable_mut_ptr(&mut self) -> *mut u8 {
                self.as_mut_ptr()
            }
            unsafe fn set_init(&mut self, pos: usize) {
                // SAFETY: the caller guarantees `pos <= capacity` and that the
                // first `pos` bytes are initialised.
                unsafe { self.set_len(pos) }
            }
        }
    };
}

// A `Vec`'s heap allocation does not move when the `Vec` does.
io_buf!(Vec<u8>, capacity);
io_buf_mut_set_len!(Vec<u8>);

// A boxed slice's allocation does not move with the box; all of it is
// initialised.
io_buf!(Box<[u8]>, len);

// SAFETY: all bytes are always initialised, so `set_init` has nothing to record:
// a read of `n` bytes leaves the rest of the slice as it was.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

// `'static` data never moves and is never freed.
io_buf!(&'static [u8], len);
io_buf!(&'static str, len);

// A `String`'s heap allocation does not move when the `String` does. (Write
// side only: a read could store bytes that are not UTF-8.)
io_buf!(String, capacity);

// `Bytes` is an immutable, reference-counted view whose memory does not move
// while any handle to it lives.
io_buf!(
    #[cfg(feature = "bytes")]
    bytes::Bytes,
    len
);

// `BytesMut` owns (or uniquely views) its allocation, which does not move with
// the handle.
io_buf!(
    #[cfg(feature = "bytes")]
    bytes::BytesMut,
    capacity
);
io_buf_mut_set_len!(
    #[cfg(feature = "bytes")]
    bytes::BytesMut
);
