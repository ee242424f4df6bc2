//! The `tokio::fs` data functions, on AIO: `read`, `read_to_string`, `write`, `copy`.

use std::io;
use std::path::Path;

use futures::StreamExt;
use futures::stream::{FuturesOrdered, FuturesUnordered};

use super::{File, OpenOptions, asyncify};
use crate::ops::{self, OpenFile};

/// Chunk size of `copy`.
const COPY_CHUNK: usize = 1 << 20;
/// Reads of `copy` in flight ahead of its writes.
const COPY_DEPTH: usize = 4;

/// Reads a whole file into a `Vec`, as `tokio::fs::read`.
///
/// When the path and the data are in the kernel's caches, the file is opened,
/// sized and read on the calling thread, with no thread hop at all (`openat2`
/// with `RESOLVE_CACHED`, `statx`, `preadv2(RWF_NOWAIT)`); what the page cache
/// does not hold is read with AIO. Otherwise one blocking task opens and sizes
/// the file and, if it is small (up to 1 MiB), reads it, as `tokio::fs::read`
/// does; a larger file is read with AIO. Either way it is read until a read
/// returns 0 (a file that grows while being read is read to its end, as
/// `std::fs::read` does).
///
/// # Errors
///
/// Those of opening the file (`NotFound`, `PermissionDenied`, ...) and of reading
/// it (`EISDIR` for a directory); `OutOfMemory` if the buffer for its size
/// cannot be allocated (a huge sparse file), as `std::fs::read`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("f");
/// aiofs::write(&path, b"contents").await?;
/// assert_eq!(aiofs::read(&path).await?, b"contents");
/// # Ok(())
/// # }
/// ```
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = path.as_ref();
    // Cached path: opened here, sized here, and read from the page cache here
    // when it holds the data: no thread hop at all.
    let (file, hint) = match OpenFile::open_cached(path, 0)? {
        Some(file) => {
            let hint = file.size_hint();
            (file, hint)
        }
        None => {
            // One hop, as `tokio::fs::read`: open, size and, for a small file,
            // the read itself in one blocking task.
            let path = path.to_owned();
            match asyncify(move || open_and_read_small(&path)).await? {
                Opened::Whole(data) => return Ok(data),
                Opened::Large(file, size) => (file, size),
            }
        }
    };
    let mut buf = Vec::new();
    let hint = usize::try_from(hint).unwrap_or(usize::MAX);
    ops::read_to_end_at(&file, &mut buf, 0, hint).await?;
    Ok(buf)
}

/// The largest file `read` reads in the blocking task that opened it (a
/// larger one is read with AIO).
const READ_IN_TASK: u64 = 1 << 20;

/// What the blocking task of `read` did.
enum Opened {
    Whole(Vec<u8>),
    Large(std::sync::Arc<OpenFile>, u64),
}

/// Opens `path` and, if it is small, reads it whole (`try_reserve`d: a size
/// the allocator refuses is `OutOfMemory`).
fn open_and_read_small(path: &Path) -> io::Result<Opened> {
    use std::io::Read;
    let mut std_file = std::fs::File::open(path)?;
    let size = std_file.metadata().map(|m| m.len()).unwrap_or(0);
    if size > READ_IN_TASK {
        return Ok(Opened::Large(OpenFile::from_owned(std_file.into()), size));
    }
    let mut data = Vec::new();
    data.try_reserve_exact(size as usize + 1).map_err(|e| {
        io::Error::new(io::ErrorKind::OutOfMemory, format!("aiofs: {e}"))
    })?;
    std_file.read_to_end(&mut data)?;
    Ok(Opened::Whole(data))
}

/// Reads a whole file into a `String`, as `tokio::fs::read_to_string`.
///
/// # Errors
///
/// Those of [`read`]; `InvalidData` if the contents are not UTF-8.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("f");
/// aiofs::write(&path, "text").await?;
/// assert_eq!(aiofs::read_to_string(&path).await?, "text");
/// # Ok(())
/// # }
/// ```
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let bytes = read(path).await?;
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("stream did not contain valid UTF-8: {e}"),
        )
    })
}

/// Creates or truncates a file and writes `contents` into it, as
/// `tokio::fs::write`.
///
/// Up to 1 MiB, one blocking task creates and writes the file, as
/// `tokio::fs::write` does (one thread hop); larger contents are written with
/// AIO once the file is created.
///
/// # Errors
///
/// Those of creating the file and of writing it (`ENOSPC`, `EFBIG`, ...).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("f");
/// aiofs::write(&path, b"hello").await?;
/// assert_eq!(std::fs::read(&path)?, b"hello");
/// # Ok(())
/// # }
/// ```
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let contents = contents.as_ref().to_vec();
    if contents.len() as u64 <= WRITE_IN_TASK {
        let path = path.as_ref().to_owned();
        return asyncify(move || std::fs::write(path, contents)).await;
    }
    let file = File::create(path).await?;
    let (res, _) = file.write_all_at(contents, 0).await;
    res
}

/// The largest contents `write` writes in the blocking task that creates the
/// file (larger ones are written with AIO).
const WRITE_IN_TASK: u64 = 1 << 20;

/// Copies the contents and permission bits of `from` to `to`, as
/// `tokio::fs::copy`; returns the number of bytes copied.
///
/// Reads and writes are in flight together: up to four 1 MiB reads ahead, and
/// the writes of the chunks already read.
///
/// # Errors
///
/// Those of opening `from` (`NotFound`, ...), of creating `to`, and of the reads
/// and writes; `InvalidInput` if `from` is not a regular file.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// # let (a, b) = (dir.path().join("a"), dir.path().join("b"));
/// aiofs::write(&a, vec![3u8; 3_000_000]).await?;
/// assert_eq!(aiofs::copy(&a, &b).await?, 3_000_000);
/// assert_eq!(aiofs::read(&b).await?, vec![3u8; 3_000_000]);
/// # Ok(())
/// # }
/// ```
pub async fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    let from = File::open(from).await?;
    let meta = from.metadata().await?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the source path is not an existing regular file",
        ));
    }
    let to = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(to)
        .await?;
    to.set_permissions(meta.permissions()).await?;

    // Reads in order, up to COPY_DEPTH ahead; writes in flight as reads finish.
    // At most 2 x COPY_DEPTH buffers circulate: a finished write's buffer is
    // the next read's (fresh allocations cost a page fault per 4 KiB).
    let src = std::sync::Arc::clone(from.open_file());
    let read_chunk = move |buf: Vec<u8>, pos: u64| {
        let src = std::sync::Arc::clone(&src);
        async move {
            let (res, buf) = ops::read_full_at(src, buf, pos).await;
            res.map(|()| (pos, buf))
        }
    };
    let mut free: Vec<Vec<u8>> = Vec::new();
    let mut reads = FuturesOrdered::new();
    let mut writes = FuturesUnordered::new();
    let mut next = 0u64;
    let mut reading = true;
    let mut copied = 0u64;
    loop {
        while reading && reads.len() < COPY_DEPTH && writes.len() < COPY_DEPTH {
            let mut buf = free.pop().unwrap_or_else(|| Vec::with_capacity(COPY_CHUNK));
            buf.clear();
            reads.push_back(read_chunk(buf, next));
            next += COPY_CHUNK as u64;
        }
        if reads.is_empty() && writes.is_empty() {
            return Ok(copied);
        }
        tokio::select! {
            Some(read) = reads.next(), if !reads.is_empty() => {
                let (pos, buf): (u64, Vec<u8>) = read?;
                if buf.len() < COPY_CHUNK {
                    // The end of the file: reads beyond it are dropped.
                    reading = false;
                    reads.clear();
                }
                if !buf.is_empty() {
                    copied += buf.len() as u64;
                    writes.push(to.write_all_at(buf, pos));
                }
            }
            Some((res, buf)) = writes.next(), if !writes.is_empty() => {
                res?;
                free.push(buf);
            }
        }
    }
}
