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

// SAFETY: a `Vec`'s heap allocation does not move when the `Vec` does; the first
// `len` bytes are initialised and `capacity` bytes are allocated.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for `IoBuf`; `set_len` is called only with initialised bytes.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: the caller guarantees `pos <= capacity` and that the first `pos`
        // bytes are initialised.
        unsafe { self.set_len(pos) }
    }
}

// SAFETY: a boxed slice's allocation does not move with the box; all of it is
// initialised.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: all bytes are always initialised, so `set_init` has nothing to record:
// a read of `n` bytes leaves the rest of the slice as it was.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

// SAFETY: `'static` data never moves and is never freed.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: `'static` data never moves and is never freed.
unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: a `String`'s heap allocation does not move when the `String` does.
// (Write side only: a read could store bytes that are not UTF-8.)
unsafe impl IoBuf for String {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

#[cfg(feature = "bytes")]
// SAFETY: `Bytes` is an immutable, reference-counted view whose memory does not
// move while any handle to it lives.
unsafe impl IoBuf for bytes::Bytes {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

#[cfg(feature = "bytes")]
// SAFETY: `BytesMut` owns (or uniquely views) its allocation, which does not move
// with the handle; `len` bytes are initialised, `capacity` allocated.
unsafe impl IoBuf for bytes::BytesMut {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

#[cfg(feature = "bytes")]
// SAFETY: as for `IoBuf`; `set_len` is called only with initialised bytes.
unsafe impl IoBufMut for bytes::BytesMut {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: the caller guarantees `pos <= capacity` and initialised bytes.
        unsafe { self.set_len(pos) }
    }
}
