//! The `tokio::fs` mirror: [`File`] and [`OpenOptions`].

mod batch;
mod file;
mod functions;
mod open_options;
mod stream;

pub use batch::Batch;
pub use file::File;
pub use functions::{copy, read, read_to_string, write};
pub use open_options::OpenOptions;
pub use tokio::fs::{
    DirBuilder, DirEntry, ReadDir, canonicalize, create_dir, create_dir_all, hard_link, metadata,
    read_dir, read_link, remove_dir, remove_dir_all, remove_file, rename, set_permissions, symlink,
    symlink_metadata, try_exists,
};

use std::io;

/// Runs a blocking call on Tokio's blocking pool, or inline outside Tokio.
pub(crate) async fn asyncify<F, T>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => match handle.spawn_blocking(f).await {
            Ok(res) => res,
            Err(e) => Err(io::Error::other(format!(
                "aiofs: background task failed: {e}"
            ))),
        },
        Err(_) => f(),
    }
}
