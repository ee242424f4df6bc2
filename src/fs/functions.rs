//! The `tokio::fs` data functions, on AIO: `read`, `read_to_string`, `write`, `copy`.

use std::io;
use std::path::Path;

use futures::StreamExt;
use futures::stream::{FuturesOrdered, FuturesUnordered};

use super::{File, OpenOptions};
use crate::ops;

/// Chunk size of `copy`.
const COPY_CHUNK: usize = 1 << 20;
/// Reads of `copy` in flight ahead of its writes.
const COPY_DEPTH: usize = 4;

/// Reads a whole file into a `Vec`, as `tokio::fs::read`.
///
/// The file is read with positioned AIO reads sized from its metadata, then
/// until a read returns 0 (so a file that grows while being read is read to its
/// end, as `std::fs::read` does).
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
    let file = File::open(path).await?;
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let mut buf = Vec::new();
    ops::read_to_end_at(
        file.open_file(),
        &mut buf,
        0,
        usize::try_from(size).unwrap_or(usize::MAX),
    )
    .await?;
    Ok(buf)
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
    let file = File::create(path).await?;
    let (res, _) = file.write_all_at(contents, 0).await;
    res
}

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
