//! `OpenOptions`, as `tokio::fs::OpenOptions`.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::stream::Shared;
use super::{File, asyncify};
use crate::ops::{Inline, OpenFile};

/// Options and flags for opening a [`File`], as `tokio::fs::OpenOptions`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("log");
/// use aiofs::OpenOptions;
///
/// let file = OpenOptions::new().read(true).write(true).create(true).mode(0o600).open(&path).await?;
/// # let _ = file;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    std: std::fs::OpenOptions,
    /// What was asked, to tell a plain read-only open (which may be done here
    /// and now when the path is cached) from the others.
    asked: Asked,
}

#[derive(Clone, Copy, Debug, Default)]
struct Asked {
    read: bool,
    /// Anything that writes or creates: `write`, `append`, `truncate`,
    /// `create`, `create_new` (or options set on a `std::fs::OpenOptions`).
    other: bool,
    custom_flags: i32,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Options with every flag off.
    pub fn new() -> OpenOptions {
        OpenOptions {
            std: std::fs::OpenOptions::new(),
            asked: Asked::default(),
        }
    }

    /// Read access.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.std.read(read);
        self.asked.read = read;
        self
    }

    /// Write access.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.std.write(write);
        self.asked.other |= write;
        self
    }

    /// Append mode (`O_APPEND`): every write lands at the end of the file,
    /// whatever position it names.
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.std.append(append);
        self.asked.other |= append;
        self
    }

    /// Truncate the file to 0 bytes on open.
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.std.truncate(truncate);
        self.asked.other |= truncate;
        self
    }

    /// Create the file if it does not exist.
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.std.create(create);
        self.asked.other |= create;
        self
    }

    /// Create the file, failing if it exists (`O_EXCL`).
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.std.create_new(create_new);
        self.asked.other |= create_new;
        self
    }

    /// The permission bits of a created file (before the umask), e.g. `0o644`.
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.std.mode(mode);
        self
    }

    /// Extra `open(2)` flags, e.g. `libc::O_DIRECT` or `libc::O_NOATIME`.
    pub fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        self.std.custom_flags(flags);
        self.asked.custom_flags = flags;
        self
    }

    /// Opens `path` with these options.
    ///
    /// The open runs on Tokio's blocking pool, as `tokio::fs` does, except a
    /// read-only open (`read` alone, with any `custom_flags`) of a path the
    /// kernel's lookup cache holds whole, which is done on the calling thread
    /// when it cannot wait (`openat2` with `RESOLVE_CACHED` and `O_NONBLOCK`,
    /// then one `statx`): no thread hop. Only a regular file is opened that
    /// way; a FIFO, a device or a directory is opened on the blocking pool
    /// (a FIFO waits there for a writer, as a blocking open does), and so is a
    /// file whose open would wait (a lease being broken). `O_NONBLOCK` is
    /// cleared again unless `custom_flags` asked for it.
    ///
    /// One wait remains possible on the calling thread: a filesystem whose
    /// open asks a daemon (FUSE sends `FUSE_OPEN` to its daemon and waits for
    /// the answer, as io_uring's inline open does too); telling such a file
    /// apart would itself ask the daemon (`fstatfs`). Options made from a
    /// `std::fs::OpenOptions` ([`From`]) always open on the blocking pool.
    ///
    /// # Errors
    ///
    /// Those of `std::fs::OpenOptions::open`: `NotFound`, `PermissionDenied`,
    /// `AlreadyExists` (with `create_new`), `InvalidInput` for an invalid
    /// combination of flags, and so on.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref();
        let a = self.asked;
        let mut reopen = None;
        if a.read && !a.other {
            // Read-only: open it here if that cannot wait (a cached path, a
            // regular file), else finish it on the blocking pool.
            let flags = a.custom_flags & !libc::O_ACCMODE;
            match OpenFile::open_cached(path, flags)? {
                Inline::Opened(file, _) => return Ok(File::from_open_file(file, Shared::new())),
                Inline::Blocking(r) => reopen = Some(r),
            }
        }
        let path = path.to_owned();
        let opts = self.std.clone();
        // The open, and the descriptor's flags and O_DIRECT alignment, on the
        // blocking pool.
        let file = asyncify(move || {
            let open = || opts.open(&path);
            let std_file = match reopen {
                Some(reopen) => reopen.finish(open)?,
                None => open()?,
            };
            Ok(OpenFile::from_owned(std_file.into()))
        })
        .await?;
        Ok(File::from_open_file(file, Shared::new()))
    }
}

impl From<std::fs::OpenOptions> for OpenOptions {
    fn from(options: std::fs::OpenOptions) -> OpenOptions {
        OpenOptions {
            std: options,
            // Unknown: always opened on the blocking pool.
            asked: Asked {
                other: true,
                ..Asked::default()
            },
        }
    }
}
