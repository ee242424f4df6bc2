//! `serve`: a static file server on hyper 1 and aiofs.
//!
//! ```text
//! cargo run --release --example serve -- --root DIR --addr 127.0.0.1:8080 [--log]
//! ```
//!
//! It serves the files under `DIR` over HTTP/1.1 (keep-alive), to `GET` and
//! `HEAD`, with `Content-Length`, a `Content-Type` from the extension,
//! `Last-Modified`, `ETag`, `304 Not Modified` for `If-None-Match` and
//! `If-Modified-Since`, and single byte ranges (`206` with `Content-Range`,
//! `416` when unsatisfiable). `--addr 127.0.0.1:0` picks a free port; the
//! address it listens on is printed first. `--log` prints one line per
//! request.
//!
//! How it uses aiofs:
//!
//! - Every read is a positioned read (`File::read_at` / `read_exact_at`) into
//!   a buffer the request owns, which becomes the response's `Bytes` without a
//!   copy. Nothing seeks, so ranges cost the same as whole files.
//! - A range of up to 128 KiB is read whole with one read before the response
//!   starts. When the page cache holds it (the common case for small files),
//!   aiofs serves it on the calling thread (`preadv2(RWF_NOWAIT)`), with no
//!   thread hop; otherwise the read goes to POSIX AIO.
//! - Larger bodies are streamed in 128 KiB chunks, with at most two reads in
//!   flight per response, and a read is started only when hyper asks for
//!   more of the body, that is when the socket has taken what came before.
//!   A 10 GiB file costs the same memory as a 1 MiB one.
//! - Opening a file has no AIO form. The server does what aiofs does for
//!   reads: on Linux it first tries `openat2(RESOLVE_CACHED)`, which opens
//!   the file only if the kernel can resolve the path from its caches, with
//!   no I/O, so it runs on the runtime's thread like a cached read; only a
//!   lookup that needs the disk goes to Tokio's blocking pool. A cached small
//!   file is thus served with no thread hop at all.
//!
//! Requests that try to leave the root (`..`, percent-encoded `..` or `/`,
//! symlinks that resolve outside it) get 403 or 404. On Linux the kernel
//! enforces it (`openat2(RESOLVE_BENEATH)`): symlinks are followed only
//! while they stay beneath the root, and absolute ones not at all. A
//! directory is served as its `index.html` (without a redirect to the path
//! with a trailing `/`), or 404 without one. A file that shrinks while it is
//! sent ends its response early: the connection is closed before the
//! promised `Content-Length`, which tells the client the body is incomplete.
//! An error that is not the client's (say, `EIO`) is a 500, printed on
//! stderr.
//!
//! `tests/serve.rs` and `benches/serve.rs` include this file as a module:
//! the tests start [`Server`]s in their own process and run
//! [`main_with_args`] in a child process; the bench runs `main_with_args` in
//! a server process of its own.

use std::borrow::Cow;
use std::convert::Infallible;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// The response body: empty, one buffer, or a stream of chunks.
pub type Body = BoxBody<Bytes, io::Error>;

/// A range up to this size is read with one `read_at` before the response
/// starts. It matches aiofs's page-cache fast path (`Config::nowait_max`).
const WHOLE_READ_MAX: u64 = 128 * 1024;
/// Larger ranges are streamed in chunks of this size...
const CHUNK: u64 = 128 * 1024;
/// ...with at most this many reads in flight per response.
const READS_IN_FLIGHT: usize = 2;

const USAGE: &str = "usage: serve [--root DIR] [--addr IP:PORT] [--log]
  --root DIR       the directory to serve (default: .)
  --addr IP:PORT   where to listen (default: 127.0.0.1:8080; port 0 picks a free one)
  --log            print one line per request";

fn main() -> ExitCode {
    main_with_args(std::env::args().skip(1))
}

/// All of `main`, for a test to run in a child process of its own.
pub fn main_with_args(args: impl IntoIterator<Item = String>) -> ExitCode {
    let options = match Options::from_args(args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("serve: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: Options) -> io::Result<()> {
    // Completions come through aiofs's signalfd once every thread blocks the
    // signal: this thread now, the runtime's threads as they start.
    if let Err(e) = aiofs::block_completion_signal() {
        eprintln!("serve: completions keep using the signal handler: {e}");
    }
    let server = Server::new(&options.root, options.log)?;
    runtime()?.block_on(async {
        let listener = TcpListener::bind(options.addr).await?;
        println!(
            "serving {} on http://{}",
            server.root().display(),
            listener.local_addr()?
        );
        server.run(listener).await
    })
}

/// The runtime `serve` runs on: multi-threaded, every thread blocking aiofs's
/// completion signal (see `aiofs::block_completion_signal`).
///
/// # Errors
///
/// Those of `tokio::runtime::Builder::build`.
fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(|| {
            // Err only under the signal notifier, where it changes nothing.
            let _ = aiofs::block_completion_signal();
        })
        .build()
}

/// The command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub root: PathBuf,
    pub addr: SocketAddr,
    pub log: bool,
}

impl Options {
    /// Parses the arguments (without the program name); `Ok(None)` for `--help`.
    ///
    /// # Errors
    ///
    /// A message for an unknown argument, a missing value or a bad address.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
        let mut options = Options {
            root: PathBuf::from("."),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log: false,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--root" => options.root = args.next().ok_or("--root needs a directory")?.into(),
                "--addr" => {
                    let addr = args.next().ok_or("--addr needs IP:PORT")?;
                    options.addr = addr
                        .parse()
                        .map_err(|e| format!("--addr {addr}: {e} (want IP:PORT)"))?;
                }
                "--log" => options.log = true,
                "-h" | "--help" => return Ok(None),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(Some(options))
    }
}

/// The file server: a root directory and whether to log requests.
#[derive(Debug)]
pub struct Server {
    root: Arc<Root>,
    log: bool,
}

impl Server {
    /// A server for the files under `root`.
    ///
    /// # Errors
    ///
    /// Those of `canonicalize` (e.g. `NotFound`), or `NotADirectory`.
    pub fn new(root: &Path, log: bool) -> io::Result<Arc<Server>> {
        Server::with_openat2(root, log, cfg!(target_os = "linux"))
    }

    /// As [`Server::new`], without `openat2` if `openat2` is false: paths
    /// are then checked with `canonicalize`, as on systems other than Linux
    /// (for the tests of that path).
    pub fn with_openat2(root: &Path, log: bool, openat2: bool) -> io::Result<Arc<Server>> {
        let path = root.canonicalize()?;
        let dir = std::fs::File::open(&path)?;
        if !dir.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", path.display()),
            ));
        }
        let root = Arc::new(Root { path, dir, openat2 });
        Ok(Arc::new(Server { root, log }))
    }

    /// The directory served, canonical.
    pub fn root(&self) -> &Path {
        &self.root.path
    }

    /// Accepts connections and serves each on its own task, until accepting
    /// fails for good.
    ///
    /// # Errors
    ///
    /// An error of `accept` that waiting does not cure.
    pub async fn run(self: Arc<Self>, listener: TcpListener) -> io::Result<()> {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) if is_transient(&e) => {
                    // Out of descriptors or memory for a moment: the
                    // connections being served will free some.
                    eprintln!("serve: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            // Responses are written whole or in 128 KiB chunks: no small
            // writes for Nagle's algorithm to merge, only delays to avoid.
            let _ = stream.set_nodelay(true);
            let server = Arc::clone(&self);
            let log = self.log;
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let server = Arc::clone(&server);
                    async move { Ok::<_, Infallible>(server.handle(peer, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    // The timer bounds the time to read a request's head (30 s).
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await
                    && log
                {
                    println!("{peer} connection closed: {e}");
                }
            });
        }
    }

    /// Answers one request.
    pub async fn handle(&self, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let response = match self.respond(&req).await {
            Ok(response) => response,
            Err(e) => {
                let status = status_of(&e);
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    eprintln!("serve: {} {}: {e}", req.method(), req.uri());
                }
                plain(status)
            }
        };
        if self.log {
            let length = response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            println!(
                "{peer} \"{} {}\" {} {length} {:.3}ms",
                req.method(),
                req.uri(),
                response.status().as_u16(),
                started.elapsed().as_secs_f64() * 1e3,
            );
        }
        response
    }

    async fn respond(&self, req: &Request<Incoming>) -> io::Result<Response<Body>> {
        let head = match *req.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let mut response = plain(StatusCode::METHOD_NOT_ALLOWED);
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                return Ok(response);
            }
        };
        let Some(relative) = relative_path(req.uri().path()) else {
            return Ok(plain(StatusCode::FORBIDDEN));
        };

        // Open and fstat here if the kernel can resolve the path from its
        // caches (no I/O: like a read the page cache holds), else on the
        // blocking pool.
        let opened = match open_under(&self.root, &relative, Lookup::CachedOnly) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let root = Arc::clone(&self.root);
                tokio::task::spawn_blocking(move || open_under(&root, &relative, Lookup::Any))
                    .await
                    .map_err(io::Error::other)?
            }
            opened => opened,
        };
        let Some(Opened { file, meta, name }) = opened? else {
            return Ok(plain(StatusCode::NOT_FOUND));
        };

        let etag = etag(&meta);
        let modified = meta.modified().ok();
        let mut headers = HeaderMap::new();
        headers.insert(header::ETAG, etag.clone());
        if let Some(modified) = modified {
            headers.insert(header::LAST_MODIFIED, http_date(modified));
        }
        if not_modified(req.headers(), &etag, modified) {
            let mut response = Response::new(empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            *response.headers_mut() = headers;
            return Ok(response);
        }

        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let len = meta.len();
        let mut status = StatusCode::OK;
        let (start, end) = match requested_range(req.headers(), &etag, modified, len) {
            Range::Full => (0, len),
            Range::Part { start, end } => {
                status = StatusCode::PARTIAL_CONTENT;
                let value = format!("bytes {start}-{}/{len}", end - 1);
                headers.insert(header::CONTENT_RANGE, header_value(value));
                (start, end)
            }
            Range::Unsatisfiable => {
                let mut response = plain(StatusCode::RANGE_NOT_SATISFIABLE);
                response.headers_mut().extend(headers);
                let value = header_value(format!("bytes */{len}"));
                response.headers_mut().insert(header::CONTENT_RANGE, value);
                return Ok(response);
            }
        };
        let mime = mime_guess::from_path(&name).first_raw();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(mime.unwrap_or("application/octet-stream")),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));

        let file = aiofs::File::from_std(file);
        let body = if head || start == end {
            empty()
        } else if end - start <= WHOLE_READ_MAX {
            // One read, usually served straight from the page cache.
            let capacity = usize::try_from(end - start).map_err(io::Error::other)?;
            let (res, buf) = file
                .read_exact_at(Vec::with_capacity(capacity), start)
                .await;
            res.map_err(|e| shrank(e, &name))?;
            Full::new(Bytes::from(buf)).map_err(|e| match e {}).boxed()
        } else {
            stream_range(file, start, end, name)
        };

        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// The body of `start..end` of `file`: `CHUNK`-sized positioned reads, at
/// most `READS_IN_FLIGHT` at a time, each started when hyper polls the body
/// for more (so only when the socket has room). If the file ends before
/// `end`, the body ends with an error, on which hyper closes the connection.
fn stream_range(file: aiofs::File, start: u64, end: u64, name: PathBuf) -> Body {
    let file = Arc::new(file);
    let reads = futures::stream::iter((start..end).step_by(CHUNK as usize))
        .map(move |pos| {
            let file = Arc::clone(&file);
            let len = (end - pos).min(CHUNK) as usize;
            // The read owns its buffer; it becomes the frame's `Bytes`.
            async move { file.read_exact_at(Vec::with_capacity(len), pos).await }
        })
        .buffered(READS_IN_FLIGHT)
        .map(move |(res, buf)| match res {
            Ok(()) => Ok(Frame::data(Bytes::from(buf))),
            Err(e) => Err(shrank(e, &name)),
        });
    BoxBody::new(StreamBody::new(reads))
}

/// The directory served.
#[derive(Debug)]
struct Root {
    /// Canonical (absolute, no symlinks): every file served is under it.
    path: PathBuf,
    /// Open, for `openat2` to resolve paths beneath it.
    dir: std::fs::File,
    /// Whether to try `openat2` (Linux).
    openat2: bool,
}

/// The file a request names, opened, with its metadata.
#[derive(Debug)]
struct Opened {
    file: std::fs::File,
    meta: Metadata,
    /// The name it was asked by (`index.html` for a directory), for its type.
    name: PathBuf,
}

/// How far a path lookup may go to find a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// Only through the kernel's caches: fails with `WouldBlock` if the
    /// lookup would need I/O, so it may run on a runtime thread.
    CachedOnly,
    /// Whatever it takes: run it on the blocking pool.
    Any,
}

/// Opens the regular file at `relative` under the root (or its `index.html`
/// if it is a directory), or `None` if there is nothing to serve there: a
/// path that leaves the root (through a symlink), a directory without
/// `index.html`, a device, a FIFO or a socket.
fn open_under(root: &Root, relative: &Path, lookup: Lookup) -> io::Result<Option<Opened>> {
    let Some(opened) = open_beneath(root, relative, lookup)? else {
        return Ok(None);
    };
    if opened.meta.is_file() {
        return Ok(Some(opened));
    }
    if !opened.meta.is_dir() {
        return Ok(None);
    }
    match open_beneath(root, &relative.join("index.html"), lookup)? {
        Some(index) if index.meta.is_file() => Ok(Some(index)),
        _ => Ok(None),
    }
}

/// Opens `relative` under the root, following symlinks only while they stay
/// beneath it; `None` if one leads out.
///
/// On Linux this is one `openat2` call with `RESOLVE_BENEATH`, so no symlink
/// swapped in meanwhile can lead out, and with `RESOLVE_CACHED` for
/// [`Lookup::CachedOnly`]. Elsewhere (or before Linux 5.6) the path is
/// checked with `canonicalize` first, on the blocking pool.
fn open_beneath(root: &Root, relative: &Path, lookup: Lookup) -> io::Result<Option<Opened>> {
    #[cfg(target_os = "linux")]
    match openat2::open(&root.dir, relative, lookup == Lookup::CachedOnly) {
        _ if !root.openat2 => {}
        Ok(file) => {
            let meta = file.metadata()?;
            let name = relative.to_path_buf();
            return Ok(Some(Opened { file, meta, name }));
        }
        // EXDEV: a symlink led out; ELOOP: too many, or a /proc magic link.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV | libc::ELOOP)) => {
            return Ok(None);
        }
        Err(e) if e.raw_os_error() != Some(libc::ENOSYS) => return Err(e),
        Err(_) => {} // Linux before 5.6 (5.12 for RESOLVE_CACHED)
    }
    if lookup == Lookup::CachedOnly {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    let real = root.path.join(relative).canonicalize()?;
    if !real.starts_with(&root.path) {
        return Ok(None);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        // A FIFO would block `open` until a writer comes; this returns at
        // once, and `fstat` then shows it is no regular file.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&real)?;
    let meta = file.metadata()?;
    let name = relative.to_path_buf();
    Ok(Some(Opened { file, meta, name }))
}

/// `openat2(2)`, which the libc crate declares no function for.
#[cfg(target_os = "linux")]
mod openat2 {
    use std::ffi::CString;
    use std::io;
    use std::os::fd::{AsRawFd as _, FromRawFd as _};
    use std::os::unix::ffi::OsStrExt as _;
    use std::path::Path;

    /// `struct open_how` of `linux/openat2.h`.
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }

    /// Opens `relative` (read-only, non-blocking: a FIFO does not wait for a
    /// writer) beneath `dir`: `EXDEV` if resolving it would leave `dir`,
    /// `ELOOP` for a magic link; with `cached_only`, `EAGAIN` (`WouldBlock`)
    /// if resolving it would need I/O.
    pub(super) fn open(
        dir: &std::fs::File,
        relative: &Path,
        cached_only: bool,
    ) -> io::Result<std::fs::File> {
        let relative = if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        };
        let path = CString::new(relative.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidFilename))?;
        let mut resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
        if cached_only {
            resolve |= libc::RESOLVE_CACHED;
        }
        let how = OpenHow {
            flags: (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK) as u64,
            mode: 0,
            resolve,
        };
        // SAFETY: `path` is NUL-terminated and `how` is a valid `open_how` of
        // the size passed; both outlive the call, which keeps no pointer.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(io::Error::other)?;
        // SAFETY: `openat2` returned a new descriptor, which nothing else owns.
        Ok(unsafe { std::fs::File::from_raw_fd(fd) })
    }
}

/// The request path as a relative path, or `None` if it tries to climb out:
/// a `..` segment (plain or percent-encoded), or an encoded `/` or NUL in a
/// segment (which would make `join` treat it as absolute or end the name).
pub fn relative_path(uri_path: &str) -> Option<PathBuf> {
    if !uri_path.starts_with('/') {
        return None;
    }
    let mut relative = PathBuf::new();
    for segment in uri_path.split('/') {
        let segment: Cow<'_, [u8]> = percent_encoding::percent_decode_str(segment).into();
        match &*segment {
            b"" | b"." => {}
            b".." => return None,
            s if s.contains(&b'/') || s.contains(&0) => return None,
            s => relative.push(OsStr::from_bytes(s)),
        }
    }
    Some(relative)
}

/// A strong validator from the inode, size and modification time.
fn etag(meta: &Metadata) -> HeaderValue {
    header_value(format!(
        "\"{:x}-{:x}-{:x}.{:x}\"",
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}

/// Whether the client's copy is current: `If-None-Match` names our ETag (or
/// `*`), or else, without `If-None-Match`, the file has not changed since
/// `If-Modified-Since` (RFC 9110, 13.2.2).
fn not_modified(headers: &HeaderMap, etag: &HeaderValue, modified: Option<SystemTime>) -> bool {
    if let Some(tags) = headers.get(header::IF_NONE_MATCH) {
        let Ok(tags) = tags.to_str() else {
            return false;
        };
        let ours = etag.as_bytes();
        return tags.split(',').map(str::trim).any(|tag| {
            // Weak comparison: `W/"x"` matches `"x"`.
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == ours
        });
    }
    match (modified, header_date(headers, header::IF_MODIFIED_SINCE)) {
        // HTTP dates have whole seconds.
        (Some(modified), Some(since)) => whole_seconds(modified) <= whole_seconds(since),
        _ => false,
    }
}

/// What a `Range` header asks for, against a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// No range, or one we ignore (several ranges, another unit, bad syntax,
    /// a stale `If-Range`): the whole file, 200.
    Full,
    /// `start..end` (end exclusive, not empty): 206.
    Part { start: u64, end: u64 },
    /// A range that starts past the end: 416.
    Unsatisfiable,
}

fn requested_range(
    headers: &HeaderMap,
    etag: &HeaderValue,
    modified: Option<SystemTime>,
    len: u64,
) -> Range {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Range::Full;
    };
    // `If-Range`: the range only if the client's copy is still this one.
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        let current = if_range == etag
            || (modified.is_some()
                && header_date(headers, header::IF_RANGE).map(whole_seconds)
                    == modified.map(whole_seconds));
        if !current {
            return Range::Full;
        }
    }
    parse_range(range, len)
}

/// Parses `bytes=A-B`, `bytes=A-` or `bytes=-N` (RFC 9110, 14.1.2).
pub fn parse_range(value: &str, len: u64) -> Range {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Range::Full;
    };
    if spec.contains(',') {
        return Range::Full; // several ranges: served whole, as RFC 9110 allows
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Full;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // `-N`: the last N bytes.
        (true, false) => match number(last) {
            Some(0) => Range::Unsatisfiable,
            Some(_) if len == 0 => Range::Unsatisfiable,
            Some(n) => Range::Part {
                start: len - n.min(len),
                end: len,
            },
            None => Range::Full,
        },
        // `A-` or `A-B`.
        (false, open) => {
            let Some(start) = number(first) else {
                return Range::Full;
            };
            let end = if open {
                len
            } else {
                match number(last) {
                    Some(last) if last >= start => last.saturating_add(1).min(len),
                    _ => return Range::Full,
                }
            };
            if start >= len {
                Range::Unsatisfiable
            } else {
                Range::Part { start, end }
            }
        }
        (true, true) => Range::Full,
    }
}

/// A response with the status's reason as a short plain-text body.
fn plain(status: StatusCode) -> Response<Body> {
    let text = status.canonical_reason().unwrap_or("");
    let mut response = Response::new(
        Full::new(Bytes::from(format!("{} {text}\n", status.as_u16())))
            .map_err(|e| match e {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed()
}

/// The status for an error from opening or reading a file.
fn status_of(e: &io::Error) -> StatusCode {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidFilename => {
            StatusCode::NOT_FOUND
        }
        io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A clearer error for a file that ended before the length promised.
fn shrank(e: io::Error, name: &Path) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        let msg = format!("{}: the file shrank while being sent", name.display());
        io::Error::new(io::ErrorKind::UnexpectedEof, msg)
    } else {
        e
    }
}

/// Errors of `accept` that pass: out of descriptors or memory, or a
/// connection that was reset before we took it.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::ECONNABORTED)
    ) || e.kind() == io::ErrorKind::ConnectionAborted
}

fn http_date(t: SystemTime) -> HeaderValue {
    header_value(httpdate::fmt_http_date(t))
}

fn header_date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    let value = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(value).ok()
}

fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A header value from text we made (ASCII digits, quotes, dates).
fn header_value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}
