//! A heap buffer with a chosen alignment, for `O_DIRECT`.

use std::alloc::{self, Layout};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use super::{IoBuf, IoBufMut};

/// A byte buffer whose start is aligned to a power of two, for `O_DIRECT` I/O.
///
/// Like a `Vec<u8>` with a fixed capacity: it starts empty, a read fills it up to
/// its capacity and sets its length, and [`extend_from_slice`](Self::extend_from_slice)
/// appends. `O_DIRECT` also wants the length and the file offset aligned: use a
/// capacity that is a multiple of the alignment.
///
/// # Panics
///
/// [`new`](Self::new) panics if `alignment` is not a power of two or the
/// capacity rounded up to it overflows `isize`; the allocation aborts on
/// out-of-memory, as `Vec` does.
///
/// # Examples
///
/// ```
/// use aiofs::buf::AlignedBuf;
///
/// let mut buf = AlignedBuf::new(4096, 8192);
/// assert_eq!(buf.len(), 0);
/// assert_eq!(buf.capacity(), 8192);
/// assert_eq!(buf.as_ptr() as usize % 4096, 0);
/// buf.extend_from_slice(b"hello");
/// assert_eq!(&buf[..], b"hello");
/// ```
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
    len: usize,
}

// SAFETY: `AlignedBuf` uniquely owns its allocation, like `Vec<u8>`.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only reads, like `Vec<u8>`.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// An empty buffer of `capacity` bytes whose start is aligned to `alignment`.
    ///
    /// # Panics
    ///
    /// If `alignment` is not a power of two or the capacity rounded up to it
    /// overflows `isize` (as `Layout` and `Vec`); [`try_new`](Self::try_new)
    /// returns an error instead.
    pub fn new(alignment: usize, capacity: usize) -> AlignedBuf {
        match AlignedBuf::try_new(alignment, capacity) {
            Ok(buf) => buf,
            Err(e) => panic!("{e}"),
        }
    }

    /// As [`new`](Self::new), but a bad alignment or size is an error.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `alignment` is not a power of two or the capacity
    /// rounded up to it overflows `isize`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(aiofs::buf::AlignedBuf::try_new(4096, 8192).is_ok());
    /// assert!(aiofs::buf::AlignedBuf::try_new(3000, 8192).is_err());
    /// ```
    pub fn try_new(alignment: usize, capacity: usize) -> std::io::Result<AlignedBuf> {
        let layout = Layout::from_size_align(capacity, alignment).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "aiofs: AlignedBuf: alignment {alignment} must be a power of two and \
                     capacity {capacity} fit isize when rounded up to it"
                ),
            )
        })?;
        let ptr = if capacity == 0 {
            // A dangling, well-aligned pointer: nothing is allocated.
            NonNull::new(alignment as *mut u8).unwrap_or(NonNull::dangling())
        } else {
            // SAFETY: `layout` has a non-zero size.
            let raw = unsafe { alloc::alloc(layout) };
            match NonNull::new(raw) {
                Some(p) => p,
                None => alloc::handle_alloc_error(layout),
            }
        };
        Ok(AlignedBuf {
            ptr,
            layout,
            len: 0,
        })
    }

    /// The alignment of the start of the buffer.
    pub fn alignment(&self) -> usize {
        self.layout.align()
    }

    /// The number of bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The fixed capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.layout.size()
    }

    /// Empties the buffer (the capacity stays).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends `data`.
    ///
    /// # Panics
    ///
    /// Panics if the data does not fit in the remaining capacity.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        let end = self.len.checked_add(data.len());
        assert!(
            end.is_some_and(|e| e <= self.capacity()),
            "aiofs: AlignedBuf::extend_from_slice: {} bytes do not fit ({} of {} used)",
            data.len(),
            self.len,
            self.capacity()
        );
        // SAFETY: the destination range `len..len + data.len()` is inside the
        // allocation (checked above) and cannot overlap `data`, which `&mut self`
        // excludes from aliasing the buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.ptr.as_ptr().add(self.len),
                data.len(),
            );
        }
        self.len += data.len();
    }

    /// Sets the length, filling any new bytes with `value`.
    ///
    /// # Panics
    ///
    /// Panics if `new_len` exceeds the capacity.
    pub fn resize(&mut self, new_len: usize, value: u8) {
        assert!(
            new_len <= self.capacity(),
            "aiofs: AlignedBuf::resize past the capacity"
        );
        if new_len > self.len {
            // SAFETY: `len..new_len` is inside the allocation (checked above).
            unsafe {
                std::ptr::write_bytes(self.ptr.as_ptr().add(self.len), value, new_len - self.len)
            };
        }
        self.len = new_len;
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.layout.size() != 0 {
            // SAFETY: allocated in `new` with this very layout.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
        }
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialised and owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`, with unique access through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("alignment", &self.alignment())
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

// SAFETY: the allocation never moves; `len <= capacity` bytes are initialised.
unsafe impl IoBuf for AlignedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for `IoBuf`; the pointer is valid for writes of `capacity` bytes.
unsafe impl IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        debug_assert!(pos <= self.capacity());
        self.len = pos;
    }
}
