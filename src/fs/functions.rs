//! The `tokio::fs` data functions: `read`, `read_to_string`, `write`, `copy`.

use std::io;
use std::path::Path;

use super::{File, asyncify};
use crate::ops::{self, Inline, OpenFile, Reopen};

/// Reads a whole file into a `Vec`, as `tokio::fs::read`.
///
/// When the path and the data are in the kernel's caches, a regular file is
/// opened, sized and read on the calling thread, with no thread hop at all
/// (`openat2` with `RESOLVE_CACHED` and `O_NONBLOCK`, `statx`,
/// `preadv2(RWF_NOWAIT)`; see [`OpenOptions::open`] for what that open never
/// waits for, and the one wait it cannot avoid, on FUSE). What the page cache
/// does not hold of a small file (up to [`Config::nowait_max`], 128 KiB by
/// default) is then read by one blocking task, as `tokio::fs::read` does (one
/// thread hop costs less CPU than an AIO request's two); of a larger file, with
/// AIO. Otherwise (a path not in the cache, or a file that is not a regular
/// one: a FIFO, a pipe's `/dev/fd/N`, a device) one blocking task opens and
/// sizes the file and, if it is small (up to 1 MiB), reads it, as
/// `tokio::fs::read` does (a FIFO is read from its writer until it closes); a
/// larger file is read with AIO. Either way it is read until a read
/// returns 0 (a file that grows while being read is read to its end, as
/// `std::fs::read` does).
///
/// # Errors
///
/// Those of opening the file (`NotFound`, `PermissionDenied`, ...) and of reading
/// it (`EISDIR` for a directory); `OutOfMemory` if the buffer for its size
/// cannot be allocated (a huge sparse file), as `std::fs::read`.
///
/// [`Config::nowait_max`]: crate::Config::nowait_max
/// [`OpenOptions::open`]: crate::OpenOptions::open
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
    // when it holds the data: no thread hop at all (`read_whole`).
    let (file, hint) = match OpenFile::open_cached(path, 0)? {
        Inline::Opened(file, size) => (file, size),
        Inline::Blocking(reopen) => {
            // One hop, as `tokio::fs::read`: open, size and, for a small file,
            // the read itself in one blocking task.
            let path = path.to_owned();
            match asyncify(move || open_and_read_small(reopen, &path)).await? {
                Opened::Whole(data) => return Ok(data),
                Opened::Large(file, size) => (file, size),
            }
        }
    };
    ops::read_whole(&file, usize::try_from(hint).unwrap_or(usize::MAX)).await
}

/// The largest file `read` reads in the blocking task that opened it (a
/// larger one is read with AIO).
const READ_IN_TASK: u64 = 1 << 20;

/// What the blocking task of `read` did.
enum Opened {
    Whole(Vec<u8>),
    Large(std::sync::Arc<OpenFile>, u64),
}

/// Opens `path` (finishes `reopen`) and, if it is small, reads it whole
/// (`try_reserve`d: a size the allocator refuses is `OutOfMemory`).
fn open_and_read_small(reopen: Reopen, path: &Path) -> io::Result<Opened> {
    use std::io::Read;
    let mut std_file = reopen.finish(|| std::fs::File::open(path))?;
    let size = std_file.metadata().map(|m| m.len()).unwrap_or(0);
    if size > READ_IN_TASK {
        return Ok(Opened::Large(OpenFile::from_owned(std_file.into()), size));
    }
    let mut data = Vec::new();
    data.try_reserve_exact(size as usize + 1)
        .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, format!("aiofs: {e}")))?;
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
/// This is `std::fs::copy` on Tokio's blocking pool, as `tokio::fs::copy`: the
/// kernel copies (`copy_file_range`, a reflink where the filesystem shares
/// extents), without the data passing through user space. Measured against
/// AIO reads and writes of 1 MiB in flight (`benches/compare --only whole`):
/// about 380 CPU µs per MiB against 650.
///
/// # Errors
///
/// Those of `std::fs::copy`: opening `from` (`NotFound`, ...), creating `to`,
/// the copy itself; `InvalidInput` if `from` is not a regular file.
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
    let (from, to) = (from.as_ref().to_owned(), to.as_ref().to_owned());
    asyncify(move || std::fs::copy(from, to)).await
}
