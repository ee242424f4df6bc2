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

pub(crate) use crate::ops::asyncify;
