//! `examples/serve.rs` driven by a real HTTP client (hyper-util's) over
//! loopback: whole files, ranges, validators, `HEAD`, traversal attempts,
//! missing files and directories, 200 concurrent downloads checked byte for
//! byte, a file that shrinks while it is sent, and a 10 GiB file served in
//! bounded memory.
//!
//! Each test starts its own server (in this process, on the test's runtime,
//! port 0) on its own temporary directory. The last test runs the built
//! example as a child process, as a user would.

#[path = "../examples/serve.rs"]
#[allow(dead_code)]
mod serve;
mod support;

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use support::Rng;

/// The bound on each test: generous, so that only a hang trips it.
const TIMEOUT: Duration = Duration::from_secs(120);

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// A server on a temporary root, and a client for it.
struct Fixture {
    /// Holds the root (`root/`) and, beside it, files the server must not give out.
    dir: tempfile::TempDir,
    root: PathBuf,
    addr: SocketAddr,
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// What a request got: status, headers and the whole body.
struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .expect("ASCII header")
    }
}

impl Fixture {
    /// Starts a server on a fresh temporary root (with nothing in it yet).
    async fn start() -> Fixture {
        Fixture::start_with(true).await
    }

    /// With `openat2` false, the server checks paths with `canonicalize`, as
    /// it does on systems other than Linux.
    async fn start_with(openat2: bool) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("mkdir root");
        let server = serve::Server::with_openat2(&root, false, openat2).expect("Server::new");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        tokio::spawn(server.run(listener));
        let client = Client::builder(TokioExecutor::new()).build_http();
        Fixture {
            dir,
            root,
            addr,
            client,
        }
    }

    /// Writes `len` bytes unique to `name` (seeded by it) under the root.
    fn file(&self, name: &str, len: usize) -> Vec<u8> {
        let data = content(name, len);
        let path = self.root.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, &data).expect("write");
        data
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response<Incoming> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Empty::new()).expect("request");
        self.client.request(req).await.expect("request failed")
    }

    async fn request(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Got {
        let response = self.send(method, path, headers).await;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Got {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        self.request(Method::GET, path, headers).await
    }
}

/// `len` bytes of a sequence seeded by `name`: two files never share content.
fn content(name: &str, len: usize) -> Vec<u8> {
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = Rng::new(seed);
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        data.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    data.truncate(len);
    data
}

/// Runs a test body on its own runtime, bounded by [`TIMEOUT`].
fn run<F: Future<Output = ()>>(test: impl FnOnce() -> F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(TIMEOUT, test())
            .await
            .expect("the test took more than its bound");
    });
}

fn assert_body(got: &Got, want: &[u8], what: &str) {
    assert_eq!(got.body.len(), want.len(), "{what}: body length");
    if let Some(i) = (0..want.len()).find(|&i| got.body[i] != want[i]) {
        panic!("{what}: first wrong byte at {i}");
    }
}

#[test]
fn whole_files_of_every_size_class_with_their_headers() {
    run(|| async {
        let f = Fixture::start().await;
        // Empty, tiny, around the one-read limit (128 KiB) and the chunk
        // size, and streamed in several chunks with a ragged end.
        let cases: [(&str, usize, &str); 8] = [
            ("empty.txt", 0, "text/plain"),
            ("one.bin", 1, "application/octet-stream"),
            ("page.html", 4096, "text/html"),
            ("pic.png", 128 * KIB - 1, "image/png"),
            ("exact.js", 128 * KIB, "text/javascript"),
            ("over.css", 128 * KIB + 1, "text/css"),
            ("deep/er/file.json", 3 * 128 * KIB, "application/json"),
            ("big.dat", 5 * MIB + 13, "application/octet-stream"),
        ];
        for (name, len, mime) in cases {
            let data = f.file(name, len);
            let got = f.get(&format!("/{name}"), &[]).await;
            assert_eq!(got.status, StatusCode::OK, "{name}");
            assert_body(&got, &data, name);
            assert_eq!(
                got.header(header::CONTENT_LENGTH),
                len.to_string(),
                "{name}"
            );
            assert_eq!(got.header(header::CONTENT_TYPE), mime, "{name}");
            assert_eq!(got.header(header::ACCEPT_RANGES), "bytes", "{name}");
            assert!(
                got.header(header::ETAG).starts_with('"'),
                "{name}: strong ETag"
            );
            let mtime = std::fs::metadata(f.root.join(name))
                .expect("stat")
                .modified()
                .expect("mtime");
            let last_modified = httpdate::parse_http_date(got.header(header::LAST_MODIFIED))
                .expect("Last-Modified is an HTTP date");
            assert_eq!(secs(last_modified), secs(mtime), "{name}: Last-Modified");
        }
        // The same files again through one keep-alive connection pool: same bytes.
        for (name, len, _) in cases {
            let got = f.get(&format!("/{name}"), &[]).await;
            assert_eq!(got.body.len(), len, "{name}, second time");
        }
    });
}

#[test]
fn ranges_first_bytes_suffix_open_ended_and_unsatisfiable() {
    run(|| async {
        let f = Fixture::start().await;
        // A small file (one read) and a streamed one (chunks of 128 KiB).
        for (name, len) in [("small.bin", 10_000usize), ("large.bin", 2 * MIB + 7)] {
            let data = f.file(name, len);
            let path = format!("/{name}");
            let cases: [(String, usize, usize); 7] = [
                ("bytes=0-99".into(), 0, 100),
                ("bytes=-100".into(), len - 100, len),
                ("bytes=1000-".into(), 1000, len),
                (format!("bytes=-{}", len + 50), 0, len), // longer than the file: all of it
                (format!("bytes=5-{}", len + 1000), 5, len), // past the end: clipped
                (format!("bytes={}-{}", len - 1, len - 1), len - 1, len),
                // Not aligned to anything; across chunk boundaries for the large file.
                (
                    format!("bytes={}-{}", len / 13, len / 2),
                    len / 13,
                    len / 2 + 1,
                ),
            ];
            for (range, start, end) in cases {
                let got = f.get(&path, &[("range", &range)]).await;
                assert_eq!(got.status, StatusCode::PARTIAL_CONTENT, "{name} {range}");
                assert_eq!(
                    got.header(header::CONTENT_RANGE),
                    format!("bytes {start}-{}/{len}", end - 1),
                    "{name} {range}"
                );
                assert_eq!(
                    got.header(header::CONTENT_LENGTH),
                    (end - start).to_string()
                );
                assert_body(&got, &data[start..end], &format!("{name} {range}"));
            }
            for range in [
                format!("bytes={len}-"),
                format!("bytes={}-", len + 1),
                "bytes=-0".into(),
            ] {
                let got = f.get(&path, &[("range", &range)]).await;
                assert_eq!(
                    got.status,
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "{name} {range}"
                );
                assert_eq!(got.header(header::CONTENT_RANGE), format!("bytes */{len}"));
            }
            // Ranges we do not serve as ranges: the whole file.
            for range in ["bytes=0-1,5-6", "bytes=9-3", "lines=1-2", "bytes=abc"] {
                let got = f.get(&path, &[("range", range)]).await;
                assert_eq!(got.status, StatusCode::OK, "{name} {range}");
                assert_body(&got, &data, &format!("{name} {range}"));
            }
            // If-Range: the range only while the client's ETag is current.
            let etag = f.get(&path, &[]).await.header(header::ETAG).to_owned();
            let got = f
                .get(&path, &[("range", "bytes=0-9"), ("if-range", &etag)])
                .await;
            assert_eq!(
                got.status,
                StatusCode::PARTIAL_CONTENT,
                "{name} If-Range current"
            );
            let got = f
                .get(&path, &[("range", "bytes=0-9"), ("if-range", "\"old\"")])
                .await;
            assert_eq!(got.status, StatusCode::OK, "{name} If-Range stale");
            assert_body(&got, &data, name);
        }
    });
}

#[test]
fn not_modified_for_if_none_match_and_if_modified_since() {
    run(|| async {
        let f = Fixture::start().await;
        let data = f.file("page.html", 3000);
        let first = f.get("/page.html", &[]).await;
        let etag = first.header(header::ETAG).to_owned();
        let last_modified = first.header(header::LAST_MODIFIED).to_owned();
        let weak = format!("W/{etag}");
        let list = format!("\"other\", {etag}");
        let old_date =
            httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        let not_modified: [&[(&str, &str)]; 5] = [
            &[("if-none-match", &etag)],
            &[("if-none-match", &weak)],
            &[("if-none-match", &list)],
            &[("if-none-match", "*")],
            &[("if-modified-since", &last_modified)],
        ];
        for headers in not_modified {
            for method in [Method::GET, Method::HEAD] {
                let got = f.request(method.clone(), "/page.html", headers).await;
                assert_eq!(got.status, StatusCode::NOT_MODIFIED, "{method} {headers:?}");
                assert!(got.body.is_empty(), "a 304 has no body");
                assert_eq!(got.header(header::ETAG), etag);
            }
        }
        let modified: [&[(&str, &str)]; 3] = [
            &[("if-none-match", "\"other\"")],
            &[("if-modified-since", &old_date)],
            // If-None-Match wins over If-Modified-Since (RFC 9110, 13.2.2).
            &[
                ("if-none-match", "\"other\""),
                ("if-modified-since", &last_modified),
            ],
        ];
        for headers in modified {
            let got = f.get("/page.html", headers).await;
            assert_eq!(got.status, StatusCode::OK, "{headers:?}");
            assert_body(&got, &data, "page.html");
        }
        // A changed file has a new ETag: the old one no longer matches.
        f.file("page.html", 3001);
        let got = f.get("/page.html", &[("if-none-match", &etag)]).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_ne!(got.header(header::ETAG), etag);
    });
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    run(|| async {
        let f = Fixture::start().await;
        for (name, len) in [("a.txt", 12usize), ("b.bin", 3 * MIB)] {
            f.file(name, len);
            let path = format!("/{name}");
            let get = f.get(&path, &[]).await;
            let head = f.request(Method::HEAD, &path, &[]).await;
            assert_eq!(head.status, StatusCode::OK);
            assert!(head.body.is_empty());
            for h in [
                header::CONTENT_LENGTH,
                header::CONTENT_TYPE,
                header::ETAG,
                header::LAST_MODIFIED,
            ] {
                assert_eq!(head.header(h.clone()), get.header(h.clone()), "{name} {h}");
            }
            let head = f
                .request(Method::HEAD, &path, &[("range", "bytes=2-5")])
                .await;
            assert_eq!(head.status, StatusCode::PARTIAL_CONTENT);
            assert_eq!(head.header(header::CONTENT_LENGTH), "4");
            assert!(head.body.is_empty());
        }
        let got = f.request(Method::POST, "/a.txt", &[]).await;
        assert_eq!(got.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(got.header(header::ALLOW), "GET, HEAD");
    });
}

#[test]
fn traversal_attempts_never_leave_the_root() {
    run(|| traversal_attempts(true));
}

#[test]
fn traversal_attempts_never_leave_the_root_without_openat2() {
    run(|| traversal_attempts(false));
}

#[test]
fn missing_files_and_directories_without_openat2() {
    run(|| missing_files_and_directories_with(false));
}

async fn traversal_attempts(openat2: bool) {
    let f = Fixture::start_with(openat2).await;
    f.file("ok.txt", 10);
    // Beside the root: a secret file and a directory holding another.
    let secret = b"the secret outside the root";
    std::fs::write(f.dir.path().join("secret.txt"), secret).expect("write");
    std::fs::create_dir(f.dir.path().join("private")).expect("mkdir");
    std::fs::write(f.dir.path().join("private/key.txt"), secret).expect("write");
    std::os::unix::fs::symlink("../secret.txt", f.root.join("link.txt")).expect("symlink");
    std::os::unix::fs::symlink(f.dir.path().join("private"), f.root.join("private"))
        .expect("symlink");
    std::os::unix::fs::symlink("/etc/passwd", f.root.join("passwd")).expect("symlink");
    // A symlink that stays inside is fine.
    std::os::unix::fs::symlink("ok.txt", f.root.join("alias.txt")).expect("symlink");

    let root_name = f
        .root
        .file_name()
        .and_then(|n| n.to_str())
        .expect("root name");
    let attempts = [
        "/../secret.txt".to_owned(),
        format!("/../{root_name}/../secret.txt"),
        "/%2e%2e/secret.txt".into(),
        "/%2E%2E/%2e%2e/%2e%2e/%2e%2e/etc/passwd".into(),
        "/.%2e/secret.txt".into(),
        "/%2e%2e%2fsecret.txt".into(),
        "/..%2f..%2fetc%2fpasswd".into(),
        "/%2fetc%2fpasswd".into(),
        "//etc/passwd".into(),
        format!("/{}", f.dir.path().join("secret.txt").display()),
        "/link.txt".into(),
        "/private/key.txt".into(),
        "/passwd".into(),
        "/ok.txt%00.png".into(),
    ];
    for path in &attempts {
        for method in [Method::GET, Method::HEAD] {
            let got = f.request(method.clone(), path, &[]).await;
            assert!(
                matches!(got.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
                "{method} {path}: {}",
                got.status
            );
            let body = String::from_utf8_lossy(&got.body);
            assert!(
                !body.contains("secret") && !body.contains("root:"),
                "{path}: {body}"
            );
        }
    }
    let got = f.get("/alias.txt", &[]).await;
    assert_eq!(got.status, StatusCode::OK, "a symlink inside the root");
    assert_eq!(got.body.len(), 10);
}

#[test]
fn missing_files_and_directories() {
    run(|| missing_files_and_directories_with(true));
}

async fn missing_files_and_directories_with(openat2: bool) {
    let f = Fixture::start_with(openat2).await;
    f.file("a.txt", 5);
    std::fs::create_dir(f.root.join("empty")).expect("mkdir");
    let index = f.file("site/index.html", 100);
    for path in [
        "/missing",
        "/missing/deeper.txt",
        "/a.txt/below",
        "/empty",
        "/empty/",
        "/",
    ] {
        let got = f.get(path, &[]).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{path}");
    }
    for path in ["/site", "/site/", "/site/index.html"] {
        let got = f.get(path, &[]).await;
        assert_eq!(got.status, StatusCode::OK, "{path}");
        assert_eq!(got.header(header::CONTENT_TYPE), "text/html", "{path}");
        assert_body(&got, &index, path);
    }
    // A FIFO is no file to serve (and opening it must not block).
    let fifo = f.root.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("no NUL");
    // SAFETY: a NUL-terminated path; mkfifo touches nothing else.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    assert_eq!(f.get("/fifo", &[]).await.status, StatusCode::NOT_FOUND);
}

#[test]
fn two_hundred_concurrent_downloads_of_mixed_sizes_byte_for_byte() {
    run(|| async {
        let f = Arc::new(Fixture::start().await);
        let mut rng = Rng::new(200);
        let sizes = [
            1,
            2,
            100,
            4095,
            4096,
            4097,
            65_536,
            131_071,
            131_072,
            131_073,
            1 << 20,
            3 << 20,
        ];
        let mut files = Vec::new();
        for i in 0..50 {
            let len = if i < sizes.len() {
                sizes[i]
            } else {
                1 + rng.below(3 * MIB as u64) as usize
            };
            let name = format!("f{i:02}.bin");
            let data = f.file(&name, len);
            files.push((name, Arc::new(data)));
        }
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200 {
            let (name, data) = files[i % files.len()].clone();
            let f = Arc::clone(&f);
            // Some ask for a range of the file instead of all of it.
            let range = (i % 5 == 4 && data.len() > 10).then(|| {
                let start = i * 7919 % (data.len() / 2);
                (start, data.len() - start / 3)
            });
            tasks.spawn(async move {
                match range {
                    None => {
                        let got = f.get(&format!("/{name}"), &[]).await;
                        assert_eq!(got.status, StatusCode::OK, "{name}");
                        assert_body(&got, &data, &name);
                    }
                    Some((start, end)) => {
                        let range = format!("bytes={start}-{}", end - 1);
                        let got = f.get(&format!("/{name}"), &[("range", &range)]).await;
                        assert_eq!(got.status, StatusCode::PARTIAL_CONTENT, "{name} {range}");
                        assert_body(&got, &data[start..end], &name);
                    }
                }
            });
        }
        let mut done = 0;
        while let Some(res) = tasks.join_next().await {
            res.expect("a download failed");
            done += 1;
        }
        assert_eq!(done, 200);
    });
}

#[test]
fn a_file_truncated_while_it_is_sent_ends_the_response_early() {
    run(|| async {
        let f = Fixture::start().await;
        let len = 64 * MIB;
        let data = f.file("shrinks.bin", len);
        let response = f.send(Method::GET, "/shrinks.bin", &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let mut got = Vec::new();
        // The first bytes arrive; then the file loses all but its first MiB.
        // The server can be at most a few chunks and the socket buffers ahead.
        while got.len() < 256 * KIB {
            let frame = body
                .frame()
                .await
                .expect("the body ended early")
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                got.extend_from_slice(&data);
            }
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(f.root.join("shrinks.bin"))
            .and_then(|file| file.set_len(MIB as u64))
            .expect("truncate");
        let ended_with_error = loop {
            match body.frame().await {
                None => break false,
                Some(Err(_)) => break true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        got.extend_from_slice(&data);
                    }
                }
            }
        };
        assert!(ended_with_error, "the body must not look complete");
        assert!(
            got.len() < len,
            "got all {} bytes of a truncated file",
            got.len()
        );
        // What came is the file's data, from its start.
        assert_eq!(
            &got[..],
            &data[..got.len()],
            "the bytes that came are the file's"
        );
        // The server goes on serving.
        f.file("after.txt", 3);
        assert_eq!(f.get("/after.txt", &[]).await.status, StatusCode::OK);
    });
}

#[test]
fn a_ten_gib_file_is_served_in_bounded_memory() {
    // Alone in its own process: it measures the process's memory.
    if !support::in_child("a_ten_gib_file_is_served_in_bounded_memory") {
        return;
    }
    run(|| async {
        let f = Fixture::start().await;
        let len: u64 = 10 << 30;
        // Sparse: no disk space, reads of zeros.
        std::fs::File::create(f.root.join("huge.bin"))
            .and_then(|file| {
                file.set_len(len)?;
                let mut tail = std::fs::OpenOptions::new()
                    .write(true)
                    .open(f.root.join("huge.bin"))?;
                std::io::Seek::seek(&mut tail, std::io::SeekFrom::End(-5))?;
                tail.write_all(b"tail!")
            })
            .expect("sparse file");
        let got = f.get("/huge.bin", &[("range", "bytes=-5")]).await;
        assert_eq!(got.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(&got.body[..], b"tail!");
        assert_eq!(
            got.header(header::CONTENT_RANGE),
            format!("bytes {}-{}/{len}", len - 5, len - 1)
        );

        let before = rss();
        let response = f.send(Method::GET, "/huge.bin", &[]).await;
        assert_eq!(
            response.headers()[header::CONTENT_LENGTH],
            HeaderValue::from(len)
        );
        let mut body = response.into_body();
        let mut received = 0usize;
        let mut peak = before;
        while received < 128 * MIB {
            let frame = body.frame().await.expect("more body").expect("frame");
            if let Ok(data) = frame.into_data() {
                assert!(data.iter().all(|&b| b == 0), "a hole reads as zeros");
                received += data.len();
            }
            peak = peak.max(rss());
        }
        // Then the client stops reading for a while: a server without
        // backpressure would go on reading the file into memory.
        tokio::time::sleep(Duration::from_millis(300)).await;
        peak = peak.max(rss());
        drop(body);
        let grew = peak.saturating_sub(before);
        assert!(
            grew < 64 * MIB,
            "serving 128 MiB of a 10 GiB file grew the RSS by {} MiB",
            grew / MIB
        );
    });
}

/// This process's resident set size, in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm rss");
    // SAFETY: `sysconf` has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    pages * page
}

#[test]
fn range_headers_parse_like_rfc_9110() {
    let part = |start, end| serve::Range::Part { start, end };
    assert_eq!(serve::parse_range("bytes=0-9", 100), part(0, 10));
    assert_eq!(serve::parse_range("bytes=90-200", 100), part(90, 100));
    assert_eq!(serve::parse_range("bytes=10-", 100), part(10, 100));
    assert_eq!(serve::parse_range("bytes=-10", 100), part(90, 100));
    assert_eq!(serve::parse_range("bytes=-1000", 100), part(0, 100));
    assert_eq!(
        serve::parse_range("bytes=100-", 100),
        serve::Range::Unsatisfiable
    );
    assert_eq!(
        serve::parse_range("bytes=-0", 100),
        serve::Range::Unsatisfiable
    );
    assert_eq!(
        serve::parse_range("bytes=-5", 0),
        serve::Range::Unsatisfiable
    );
    assert_eq!(serve::parse_range("bytes=0-1,3-4", 100), serve::Range::Full);
    assert_eq!(serve::parse_range("bytes=5-2", 100), serve::Range::Full);
    assert_eq!(serve::parse_range("bytes=+5-", 100), serve::Range::Full);
    assert_eq!(serve::parse_range("items=0-1", 100), serve::Range::Full);
}

#[test]
fn request_paths_map_under_the_root_or_are_refused() {
    assert_eq!(
        serve::relative_path("/a/b.txt"),
        Some(PathBuf::from("a/b.txt"))
    );
    assert_eq!(serve::relative_path("//a/./b"), Some(PathBuf::from("a/b")));
    assert_eq!(serve::relative_path("/a%20b"), Some(PathBuf::from("a b")));
    assert_eq!(serve::relative_path("/"), Some(PathBuf::new()));
    assert_eq!(serve::relative_path("/../etc/passwd"), None);
    assert_eq!(serve::relative_path("/a/%2e%2E/b"), None);
    assert_eq!(serve::relative_path("/%2Fetc%2Fpasswd"), None);
    assert_eq!(serve::relative_path("/a%00b"), None);
    assert_eq!(serve::relative_path("*"), None);
}

#[test]
fn command_line() {
    let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let options = serve::Options::from_args(args("--root /srv --addr 127.0.0.1:0 --log"))
        .expect("parses")
        .expect("not --help");
    assert_eq!(options.root, Path::new("/srv"));
    assert_eq!(options.addr, "127.0.0.1:0".parse().expect("addr"));
    assert!(options.log);
    assert_eq!(serve::Options::from_args(args("--help")), Ok(None));
    assert!(serve::Options::from_args(args("--addr nowhere")).is_err());
    assert!(serve::Options::from_args(args("--root")).is_err());
    assert!(serve::Options::from_args(args("--bogus")).is_err());
}

/// The example's `main` in a process of its own, as a user runs it: it prints
/// where it listens (port 0 picks a port), serves, and logs one line per
/// request. The child is this test binary running this test with
/// `SERVE_ARGS` set, which calls the example's `main` with those arguments.
#[test]
fn the_example_main_prints_its_address_serves_and_logs() {
    use std::io::BufRead as _;

    const NAME: &str = "the_example_main_prints_its_address_serves_and_logs";
    if let Ok(args) = std::env::var("SERVE_ARGS") {
        // The child: serves until the parent kills it.
        let code = serve::main_with_args(args.split_whitespace().map(String::from));
        panic!("serve's main returned {code:?}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hello.txt"), b"hello\n").expect("write");
    let root = dir.path().to_str().expect("utf-8");
    let child = std::process::Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(
            "SERVE_ARGS",
            format!("--root {root} --addr 127.0.0.1:0 --log"),
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the child");
    let mut child = KillOnDrop(child);
    // Lines from the child, read on a thread so that waiting for one is bounded.
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line_with = |what: &str| loop {
        let line = lines.recv_timeout(TIMEOUT).expect("the child went quiet");
        // With one test thread, the harness's "test NAME ... " starts the
        // test's first line.
        if let Some(i) = line.find(what) {
            break line[i..].to_owned();
        }
    };
    let first = next_line_with("serving ");
    let addr = first
        .rsplit("http://")
        .next()
        .expect("an address")
        .to_owned();
    assert!(!addr.ends_with(":0"), "the actual port: {first}");
    run(|| async move {
        let client: Client<HttpConnector, Empty<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let uri = format!("http://{addr}/hello.txt").parse().expect("uri");
        let response = client.get(uri).await.expect("GET");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&body[..], b"hello\n");
    });
    let log = next_line_with("\"GET ");
    assert!(log.contains("\"GET /hello.txt\" 200 6 "), "{log}");
}

/// Kills and reaps the child when the test ends, passed or failed.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}
