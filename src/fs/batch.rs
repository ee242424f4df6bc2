//! [`Batch`]: independent requests on one or several files, submitted
//! together with `lio_listio` (the engine is `ops::batch`).

use crate::buf::{IoBuf, IoBufMut};
use crate::fs::File;
use crate::ops::{Entry, Submit, SubmitEach, request_read, request_write};

/// Independent reads and writes, on one or several files, each with its own
/// buffer and position, submitted with one `lio_listio` call.
///
/// Each request gets its own result and its buffer back, in the order added
/// ([`submit`](Batch::submit)) or as each finishes
/// ([`submit_each`](Batch::submit_each)). Requests that cannot be submitted
/// (a position past `i64::MAX`, a pipe, a misaligned `O_DIRECT` request) get
/// their error without affecting the others; glibc's partial failures are
/// checked request by request. The driver's in-flight limit applies: beyond it,
/// requests wait in order.
///
/// Nothing is submitted before the returned future or stream is first polled.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// # let (pa, pb) = (dir.path().join("a"), dir.path().join("b"));
/// std::fs::write(&pa, b"0123456789")?;
/// let a = aiofs::File::open(&pa).await?;
/// let b = aiofs::File::create(&pb).await?;
///
/// let mut batch = aiofs::Batch::new();
/// batch.read_at(&a, Vec::with_capacity(3), 0);
/// batch.read_at(&a, Vec::with_capacity(3), 7);
/// batch.write_at(&b, b"xyz".to_vec(), 0);
/// let results = batch.submit().await;
///
/// assert_eq!(results[0].1, b"012");
/// assert_eq!(results[1].1, b"789");
/// assert_eq!(*results[2].0.as_ref().unwrap(), 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Batch<B> {
    entries: Vec<Entry<B>>,
}

impl<B> Default for Batch<B> {
    fn default() -> Self {
        Batch {
            entries: Vec::new(),
        }
    }
}

impl<B> Batch<B> {
    /// An empty batch.
    pub fn new() -> Batch<B> {
        Batch::default()
    }

    /// The number of requests added.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no request was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<B: IoBufMut> Batch<B> {
    /// Adds a read of `file` at `pos` into `buf` (as [`File::read_at`]: up to
    /// the buffer's capacity; its length becomes the count read).
    pub fn read_at(&mut self, file: &File, buf: B, pos: u64) -> &mut Batch<B> {
        self.entries.push(request_read(file.open_file(), buf, pos));
        self
    }
}

impl<B: IoBuf> Batch<B> {
    /// Adds a write of `buf`'s initialised bytes to `file` at `pos` (as
    /// [`File::write_at`]).
    pub fn write_at(&mut self, file: &File, buf: B, pos: u64) -> &mut Batch<B> {
        self.entries.push(request_write(file.open_file(), buf, pos));
        self
    }

    /// Submits every request (one `lio_listio`, on first poll) and resolves to
    /// their results, in the order they were added.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future never blocks: requests in flight are orphaned (they
    /// run to completion in the driver's care; their buffers are freed then).
    pub fn submit(self) -> Submit<B> {
        Submit::new(self.entries)
    }

    /// Submits every request (one `lio_listio`, on first poll) and yields each
    /// result as it finishes, with the request's index (its order of addition).
    ///
    /// # Cancel safety
    ///
    /// As for [`submit`](Batch::submit).
    pub fn submit_each(self) -> SubmitEach<B> {
        SubmitEach::new(self.entries)
    }
}
