//! Which calls report a failed write-behind (issue 11, item 3).
//!
//! A write accepted by `AsyncWrite` and failed later in the background is
//! reported by `write`, `flush`, `shutdown` and `sync_all` (and kept to be
//! retried, which `tokio::fs` does not do), and never by reads, `metadata`,
//! `seek` (`SeekFrom::End` included), `set_len` or `try_clone`: those used to
//! return it, every time, as `tokio::fs` never does.
//!
//! - `a_failed_write_behind_on_a_read_only_file_fails_only_writes_and_flushes`:
//!   the write fails with `EBADF` (the file is open read-only);
//! - `a_write_behind_past_the_file_size_limit_fails_only_writes_and_flushes`:
//!   the write fails with `EFBIG` (`RLIMIT_FSIZE`, in a child process of this
//!   binary), so `set_len` itself can succeed.
//!
//! Each runs the same steps on `tokio::fs::File` first and requires of aiofs
//! what `tokio::fs` does; every deviation is listed in the failure. The
//! notifier comes from `AIOFS_NOTIFIER`.

mod support;

use std::io::{self, SeekFrom};
use std::path::Path;

use support::{in_child, pattern_bytes, serial};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWrite, AsyncWriteExt};

const LEN: usize = 64 * 1024;

/// What a file type does after its write-behind failed.
#[derive(Debug, Default)]
struct After {
    flush: Option<String>,
    read: Option<String>,
    seek_current: Option<String>,
    seek_start: Option<String>,
    seek_end: Option<String>,
    metadata: Option<String>,
    set_len: Option<String>,
    try_clone: Option<String>,
    flush_again: Option<String>,
    shutdown: Option<String>,
    sync_all: Option<String>,
}

/// The error, if any, as its kind and OS code (what two equal errors share).
fn err<T>(r: &io::Result<T>) -> Option<String> {
    r.as_ref().err().map(describe)
}

fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{:?}, os error {code}", e.kind()),
        None => format!("{:?}: {e}", e.kind()),
    }
}

/// The operations both file types have.
trait Ops: AsyncRead + AsyncWrite + AsyncSeek + Unpin + Sized {
    async fn metadata(&self) -> io::Result<std::fs::Metadata>;
    async fn set_len(&self, size: u64) -> io::Result<()>;
    async fn try_clone(&self) -> io::Result<Self>;
    async fn sync_all(&self) -> io::Result<()>;
}

impl Ops for tokio::fs::File {
    async fn metadata(&self) -> io::Result<std::fs::Metadata> {
        tokio::fs::File::metadata(self).await
    }
    async fn set_len(&self, size: u64) -> io::Result<()> {
        tokio::fs::File::set_len(self, size).await
    }
    async fn try_clone(&self) -> io::Result<Self> {
        tokio::fs::File::try_clone(self).await
    }
    async fn sync_all(&self) -> io::Result<()> {
        tokio::fs::File::sync_all(self).await
    }
}

impl Ops for aiofs::File {
    async fn metadata(&self) -> io::Result<std::fs::Metadata> {
        aiofs::File::metadata(self).await
    }
    async fn set_len(&self, size: u64) -> io::Result<()> {
        aiofs::File::set_len(self, size).await
    }
    async fn try_clone(&self) -> io::Result<Self> {
        aiofs::File::try_clone(self).await
    }
    async fn sync_all(&self) -> io::Result<()> {
        aiofs::File::sync_all(self).await
    }
}

/// Writes `data` at `at` (buffered: accepted), flushes (the failure), then
/// tries every other call once, and flush, shutdown and `sync_all` again.
/// `new_len` is what `set_len` is asked. Reads check their bytes against
/// `content`, the file as it was.
async fn after_a_failed_write<F: Ops>(
    mut f: F,
    at: u64,
    data: &[u8],
    new_len: u64,
    content: &[u8],
) -> After {
    let mut a = After::default();
    f.seek(SeekFrom::Start(at))
        .await
        .expect("seek to the write");
    f.write_all(data).await.expect("write_all is accepted");
    a.flush = err(&f.flush().await);
    // Back to the start: a read there has data.
    a.seek_start = err(&f.seek(SeekFrom::Start(0)).await);
    a.seek_current = err(&f.stream_position().await);
    let mut buf = vec![0; 4096];
    let read = f.read(&mut buf).await;
    a.read = match &read {
        Ok(n) if *n > 0 && buf[..*n] == content[..*n] => None,
        Ok(n) => Some(format!("Ok({n}) with other bytes than the file's")),
        Err(_) => err(&read),
    };
    a.seek_end = match f.seek(SeekFrom::End(0)).await {
        Ok(p) if p == content.len() as u64 => None,
        Ok(p) => Some(format!("Ok({p}), the file holds {} bytes", content.len())),
        Err(e) => Some(describe(&e)),
    };
    a.metadata = err(&f.metadata().await);
    a.set_len = err(&f.set_len(new_len).await);
    a.try_clone = err(&f.try_clone().await);
    a.flush_again = err(&f.flush().await);
    a.shutdown = err(&f.shutdown().await);
    a.sync_all = err(&f.sync_all().await);
    a
}

/// Lists where aiofs does not do what it must: the write-behind's failure
/// reported by `flush`, `shutdown`, `sync_all`; never by the others, which
/// behave as `tokio::fs`'s (`set_len`: the same outcome).
fn deviations(tokio: &After, aiofs: &After) -> Vec<String> {
    let mut out = Vec::new();
    let mut must_fail = |what: &str, got: &Option<String>| {
        if got.is_none() {
            out.push(format!("{what}: Ok, must report the failed write"));
        }
    };
    must_fail("flush", &aiofs.flush);
    must_fail(
        "flush again (the data is kept and retried)",
        &aiofs.flush_again,
    );
    must_fail("shutdown", &aiofs.shutdown);
    must_fail("sync_all", &aiofs.sync_all);
    let mut must_not = |what: &str, got: &Option<String>, tokio: &Option<String>| {
        if got.is_some() && got != tokio {
            out.push(format!(
                "{what}: {} (tokio::fs: {})",
                got.as_deref().unwrap_or_default(),
                tokio.as_deref().unwrap_or("Ok")
            ));
        }
    };
    must_not("seek(Start(0))", &aiofs.seek_start, &tokio.seek_start);
    must_not("stream_position", &aiofs.seek_current, &tokio.seek_current);
    must_not("read", &aiofs.read, &tokio.read);
    must_not("seek(End(0))", &aiofs.seek_end, &tokio.seek_end);
    must_not("metadata", &aiofs.metadata, &tokio.metadata);
    must_not("set_len", &aiofs.set_len, &tokio.set_len);
    must_not("try_clone", &aiofs.try_clone, &tokio.try_clone);
    out
}

fn file_of(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pattern_bytes(0, LEN)).expect("write");
    path
}

fn check(tokio: &After, aiofs: &After) {
    println!("tokio::fs: {tokio:#?}\naiofs: {aiofs:#?}");
    // The expectation is fair: tokio::fs fails none of these.
    for (what, r) in [
        ("read", &tokio.read),
        ("seek(End(0))", &tokio.seek_end),
        ("metadata", &tokio.metadata),
        ("try_clone", &tokio.try_clone),
    ] {
        assert!(r.is_none(), "tokio::fs {what}: {r:?}");
    }
    assert!(tokio.flush.is_some(), "tokio::fs reports the failed write");
    let bad = deviations(tokio, aiofs);
    assert!(
        bad.is_empty(),
        "after a failed write-behind, aiofs::File differs from what it must do:\n  {}",
        bad.join("\n  ")
    );
}

#[tokio::test]
async fn a_failed_write_behind_on_a_read_only_file_fails_only_writes_and_flushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let content = pattern_bytes(0, LEN);
    let data = pattern_bytes(1 << 40, 3000);

    let path = file_of(dir.path(), "tokio");
    let f = tokio::fs::File::open(&path).await.expect("open");
    let tokio = after_a_failed_write(f, 100, &data, 10, &content).await;

    let path = file_of(dir.path(), "aiofs");
    let f = aiofs::File::open(&path).await.expect("open");
    let aiofs = after_a_failed_write(f, 100, &data, 10, &content).await;

    // set_len on a read-only file fails on its own account (EINVAL), in both.
    assert!(tokio.set_len.is_some());
    check(&tokio, &aiofs);
    assert!(
        std::fs::read(&path).expect("read") == content,
        "the read-only file changed"
    );
}

/// Past `RLIMIT_FSIZE` (1 MiB here) a write fails with `EFBIG`, while
/// `set_len` below it succeeds.
#[test]
fn a_write_behind_past_the_file_size_limit_fails_only_writes_and_flushes() {
    let _serial = serial();
    if !in_child("a_write_behind_past_the_file_size_limit_fails_only_writes_and_flushes") {
        return;
    }
    // SAFETY: ignoring SIGXFSZ (whose default action ends the process) in this
    // child process, which runs this test alone.
    assert_ne!(
        unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) },
        libc::SIG_ERR
    );
    support::process::set_soft_limit(libc::RLIMIT_FSIZE, 1 << 20);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let content = pattern_bytes(0, LEN);
            let data = pattern_bytes(1 << 40, 3000);
            let beyond = 2 << 20;

            let path = file_of(dir.path(), "tokio");
            let f = tokio::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .await
                .expect("open");
            let tokio = after_a_failed_write(f, beyond, &data, LEN as u64, &content).await;

            let path = file_of(dir.path(), "aiofs");
            let f = support::open_rw(&path).await;
            let aiofs = after_a_failed_write(f, beyond, &data, LEN as u64, &content).await;
            assert!(
                tokio.set_len.is_none(),
                "tokio::fs set_len: {:?}",
                tokio.set_len
            );
            check(&tokio, &aiofs);
        });
}
