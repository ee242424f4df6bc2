//! The static file server of `examples/serve.rs` (aiofs) against
//! `tower-http`'s `ServeDir` (`tokio::fs`) on the same hyper, driven by the
//! same loopback client, as ratios.
//!
//! ```text
//! cargo bench --bench serve                  # full run: 5 runs per row, medians
//! cargo bench --bench serve -- --quick       # smoke run (< 20 s)
//! cargo bench --bench serve -- --runs 3 --secs 2 --conns 16 --set small --cache cached
//! AIOFS_BENCH_DIR=/mnt/disk cargo bench --bench serve   # where the files go
//! ```
//!
//! **Files.** `small`: 4,000 files of 1–64 KiB (uniform, seeded), 130 MiB in
//! all; `large`: 4 files of 64 MiB. (`--quick`: 400 small files, 2 large ones
//! of 16 MiB.) Each holds the benches' offset pattern. They go in a new
//! directory in `AIOFS_BENCH_DIR`, else Cargo's target tmpdir, else the system
//! temp dir: the first that is not memory-backed (tmpfs has no device to be
//! cold on).
//!
//! **Servers**, each in a process of its own (this bench binary started again
//! with `--server`), both on a default multi_thread runtime (one worker per
//! CPU), HTTP/1.1 with keep-alive, `TCP_NODELAY`:
//! - `aiofs`: `examples/serve.rs`'s `main` itself (`--root DIR --addr
//!   127.0.0.1:0`).
//! - `ServeDir`: `tower_http::services::ServeDir::new(DIR)` with its defaults
//!   (64 KiB chunks), behind the same hyper `http1` connection code as the
//!   example's accept loop.
//!
//! **Client**: this process, a multi_thread runtime (one worker per CPU), N
//! connections (1, 16, 128) made with `hyper::client::conn::http1`, each a
//! task sending one `GET` after another on its keep-alive connection and
//! reading each body to its end. Every response must be 200 with the file's
//! length; the first body of every connection is checked byte for byte.
//! Which file: **cached** rows pick files at random (seeded per connection);
//! every file is read (warmed) right before the run, because these machines
//! drop idle page cache after ~30 s. **Cold** rows evict every file
//! (`posix_fadvise(POSIX_FADV_DONTNEED)`, after which `fincore` shows none of
//! them cached) right before the run, and the connections take the files in
//! one shared shuffled sweep, so that no small file is fetched twice before
//! every other has been; a cold small-file run ends when the sweep does (or
//! at the time limit). Large files are shared by the concurrent downloads of
//! a cold run (the first reader brings the pages in), as a popular file is.
//!
//! **Figures** per run: requests completed per second (for large files,
//! downloads counted by their bytes, half a file as half a request: at 128
//! connections few 64 MiB downloads finish within a run); MB/s (10^6 bytes)
//! of body received (whole or not: a download cut by the end of the run
//! counts what arrived); p50/p99 latency of the requests that finished, from
//! sending the request to the last byte of the body; the server process's
//! CPU time (user + system, every thread, `getrusage` in the server) and
//! context switches per request; for aiofs, its reads per request that went
//! to POSIX AIO and that the page cache served (`aiofs::stats()` in the
//! server). Each figure is the median over the runs; the servers alternate
//! first place run by run. Each run also prints (on stderr) the server's and
//! the client's CPU per request.
//! `other%` is the CPU time neither the client nor the server used during the
//! run (other programs, kernel threads, steal) as a share of all CPUs: these
//! 2-CPU machines are shared, and a warning is printed past 10%.
//!
//! The ratios are aiofs ÷ ServeDir (> 1: aiofs serves more, or, for CPU and
//! latency, uses more). The targets: at least ServeDir's req/s and MB/s in
//! every row, and ≥ 2× its req/s on cached small files.

#[path = "compare/util.rs"]
#[allow(dead_code)]
mod common;
#[path = "../examples/serve.rs"]
#[allow(dead_code)]
mod serve;

use std::io::{self, BufRead as _, Write as _};
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{KIB, MIB, fill_pattern, fmt_pct, fmt_rate, median, verify_pattern};
use http_body_util::{BodyExt as _, Empty};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Clone)]
struct Params {
    mode: &'static str,
    runs: usize,
    secs: f64,
    small_files: usize,
    large_files: usize,
    large_size: usize,
    conns: Vec<usize>,
    sets: Vec<Set>,
    caches: Vec<Cache>,
}

impl Params {
    fn full() -> Params {
        Params {
            mode: "full",
            runs: 5,
            secs: 3.0,
            small_files: 4000,
            large_files: 4,
            large_size: 64 * MIB,
            conns: vec![1, 16, 128],
            sets: vec![Set::Small, Set::Large],
            caches: vec![Cache::Cached, Cache::Cold],
        }
    }

    fn quick() -> Params {
        Params {
            mode: "quick",
            runs: 1,
            secs: 0.3,
            small_files: 400,
            large_files: 2,
            large_size: 16 * MIB,
            ..Params::full()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    Small,
    Large,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cache {
    Cached,
    Cold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Aiofs,
    ServeDir,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Aiofs => "aiofs",
            Kind::ServeDir => "servedir",
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("--server") {
        server_main(&args[1..])
    } else {
        bench_main(&args)
    };
    if let Err(e) = result {
        eprintln!("bench serve: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- the servers

/// `--server aiofs|servedir ROOT`: serve ROOT on a free loopback port, print
/// `serving ROOT on http://ADDR`, and answer `usage` lines on stdin with this
/// process's CPU time; exit when stdin closes (so a server never outlives the
/// bench).
fn server_main(args: &[String]) -> Result<()> {
    let [kind, root] = args else {
        return Err("usage: --server aiofs|servedir ROOT".into());
    };
    std::thread::spawn(|| {
        for line in io::stdin().lock().lines() {
            match line.as_deref() {
                Ok("usage") => {
                    let (cpu_us, csw) = common::usage();
                    // aiofs's counters (all zero in the ServeDir server).
                    let a = aiofs::stats();
                    println!("usage {cpu_us} {csw} 0 {} {}", a.submitted, a.nowait_reads);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        std::process::exit(0);
    });
    match kind.as_str() {
        "aiofs" => {
            let args = ["--root", root, "--addr", "127.0.0.1:0"].map(String::from);
            match serve::main_with_args(args) {
                code if code == std::process::ExitCode::SUCCESS => Ok(()),
                code => Err(format!("serve's main ended with {code:?}").into()),
            }
        }
        "servedir" => serve_dir(Path::new(root)),
        other => Err(format!("unknown server {other}").into()),
    }
}

/// `ServeDir` behind the same accept loop and connection settings as the
/// example's (`Server::run`), on a default multi_thread runtime.
fn serve_dir(root: &Path) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!(
            "serving {} on http://{}",
            root.display(),
            listener.local_addr()?
        );
        let service = tower_http::services::ServeDir::new(root);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let service = hyper_util::service::TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// A server process: its address, and its `usage` answers.
struct ServerProcess {
    kind: Kind,
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
}

impl ServerProcess {
    fn start(kind: Kind, root: &Path) -> Result<ServerProcess> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--server")
            .arg(kind.name())
            .arg(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in io::BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = ServerProcess {
            kind,
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
        };
        let first = server.line()?;
        server.addr = first
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("{}: unexpected first line {first:?}", kind.name()))?;
        Ok(server)
    }

    fn line(&self) -> Result<String> {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .map_err(|e| format!("{} server: no answer ({e})", self.kind.name()).into())
    }

    /// The server process's CPU time (µs), context switches, and aiofs's
    /// AIO submissions and page-cache reads, so far.
    fn usage(&mut self) -> Result<Usage> {
        let stdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "usage")?;
        stdin.flush()?;
        let line = self.line()?;
        let fields: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse::<f64>)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| format!("bad usage line {line:?}: {e}"))?;
        match fields[..] {
            [cpu_us, csw, _minflt, aio, nowait] => Ok(Usage {
                cpu_us,
                csw,
                aio,
                nowait,
            }),
            _ => Err(format!("bad usage line {line:?}").into()),
        }
    }
}

/// What a server process reports of itself.
#[derive(Debug, Clone, Copy)]
struct Usage {
    cpu_us: f64,
    csw: f64,
    /// Requests aiofs submitted to POSIX AIO.
    aio: f64,
    /// Reads aiofs served from the page cache (`RWF_NOWAIT`).
    nowait: f64,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Closing stdin ends it; kill it in case it is stuck.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- the files

/// The files of one set, as the client asks for them.
struct Files {
    /// URL path and size.
    list: Vec<(String, usize)>,
    paths: Vec<PathBuf>,
}

/// Creates both sets under `root`, then syncs (so that eviction can drop them).
fn make_files(root: &Path, p: &Params) -> Result<(Files, Files)> {
    let mut rng = RandomOffsets::new(13, 0, 64 * KIB as u64);
    let mut small = Files {
        list: Vec::new(),
        paths: Vec::new(),
    };
    let mut buf = vec![0u8; 64 * KIB + 8];
    fill_pattern(&mut buf, 0);
    std::fs::create_dir_all(root.join("small"))?;
    for i in 0..p.small_files {
        let size = 1 + rng.next().unwrap_or(0) as usize; // 1 ..= 64 KiB
        let name = format!("small/{i:05}.bin");
        let path = root.join(&name);
        std::fs::write(&path, &buf[..size])?;
        small.list.push((format!("/{name}"), size));
        small.paths.push(path);
    }
    let mut large = Files {
        list: Vec::new(),
        paths: Vec::new(),
    };
    std::fs::create_dir_all(root.join("large"))?;
    for i in 0..p.large_files {
        let name = format!("large/{i}.bin");
        let path = root.join(&name);
        common::pattern_file(&path, p.large_size as u64)?;
        large.list.push((format!("/{name}"), p.large_size));
        large.paths.push(path);
    }
    // SAFETY: `sync` has no preconditions.
    unsafe { libc::sync() };
    Ok((small, large))
}

fn warm(files: &Files) -> Result<()> {
    for path in &files.paths {
        common::warm(path)?;
    }
    Ok(())
}

fn evict(files: &Files) -> Result<()> {
    for path in &files.paths {
        let f = std::fs::File::open(path)?;
        // SAFETY: a plain system call on a descriptor we own.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc).into());
        }
    }
    Ok(())
}

/// A new directory for the files, on the first candidate that is not memory-backed.
fn place() -> Result<tempfile::TempDir> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("AIOFS_BENCH_DIR") {
        candidates.push(d.into());
    }
    if let Some(d) = option_env!("CARGO_TARGET_TMPDIR") {
        candidates.push(d.into());
    }
    candidates.push(std::env::temp_dir());
    let mut refused = Vec::new();
    for dir in candidates {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            refused.push(format!("{}: {e}", dir.display()));
            continue;
        }
        match common::memory_fs(&dir) {
            Ok(None) => {}
            Ok(Some(name)) => {
                refused.push(format!("{}: {name}", dir.display()));
                continue;
            }
            Err(e) => {
                refused.push(format!("{}: {e}", dir.display()));
                continue;
            }
        }
        return Ok(tempfile::Builder::new()
            .prefix("aiofs-serve-")
            .tempdir_in(&dir)?);
    }
    Err(format!(
        "no directory on a real disk (set AIOFS_BENCH_DIR): {}",
        refused.join("; ")
    )
    .into())
}

// ---------------------------------------------------------------- the client

/// Which file each request asks for.
#[derive(Debug)]
enum Order {
    /// At random, seeded per connection.
    Random,
    /// One shared sweep through a shuffled list; `once`: stop at its end.
    Sweep {
        order: Vec<usize>,
        next: AtomicUsize,
        once: bool,
    },
}

/// One connection's results (shared so that a download cut by the end of the
/// run still counts the bytes it got).
#[derive(Debug, Default)]
struct ConnStats {
    bytes: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
}

/// One run's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    rps: f64,
    mbps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us_per_req: f64,
    csw_per_req: f64,
    /// aiofs reads through POSIX AIO, and from the page cache, per request.
    aio_per_req: f64,
    nowait_per_req: f64,
    other: f64,
}

/// Runs `conns` connections against `addr` until `secs` pass (or a
/// one-time sweep ends), and returns the run's figures.
async fn load(
    addr: SocketAddr,
    files: Arc<Files>,
    conns: usize,
    order: Arc<Order>,
    secs: f64,
) -> Result<(f64, u64, Vec<u32>)> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started + Duration::from_secs_f64(secs));
    let mut stats = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conns {
        let stat = Arc::new(ConnStats::default());
        stats.push(Arc::clone(&stat));
        let (files, order) = (Arc::clone(&files), Arc::clone(&order));
        tasks.spawn(async move {
            match tokio::time::timeout_at(deadline, connection(addr, &files, &order, c, &stat))
                .await
            {
                Ok(res) => res,
                Err(_) => Ok(()), // time is up
            }
        });
    }
    while let Some(res) = tasks.join_next().await {
        res??;
    }
    let secs = started.elapsed().as_secs_f64().min(secs);
    let bytes = stats.iter().map(|s| s.bytes.load(Ordering::Relaxed)).sum();
    let mut latencies = Vec::new();
    for s in &stats {
        latencies.extend(s.latencies_us.lock().map_err(|_| "poisoned")?.iter());
    }
    Ok((secs, bytes, latencies))
}

async fn connection(
    addr: SocketAddr,
    files: &Files,
    order: &Order,
    c: usize,
    stat: &ConnStats,
) -> Result<()> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection and its requests in one task: a chunk of body needs no
    // wake-up of another task.
    let requests = std::pin::pin!(requests(sender, addr, files, order, c, stat));
    match futures::future::select(conn, requests).await {
        futures::future::Either::Left((res, _)) => {
            res?;
            Err("the server closed the connection".into())
        }
        futures::future::Either::Right((res, _)) => res,
    }
}

/// One connection's requests, one after another.
async fn requests(
    mut sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    files: &Files,
    order: &Order,
    c: usize,
    stat: &ConnStats,
) -> Result<()> {
    let mut random = RandomOffsets::new(7, c, files.list.len() as u64);
    let host = addr.to_string();
    for n in 0.. {
        let i = match order {
            Order::Random => random.next().unwrap_or(0) as usize,
            Order::Sweep { order, next, once } => {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if *once && k >= order.len() {
                    return Ok(());
                }
                order[k % order.len()]
            }
        };
        let (path, size) = &files.list[i];
        let req = Request::get(path.as_str())
            .header(hyper::header::HOST, host.as_str())
            .body(Empty::<Bytes>::new())?;
        let t0 = Instant::now();
        sender.ready().await?;
        let response = sender.send_request(req).await?;
        if response.status() != StatusCode::OK {
            return Err(format!("GET {path}: {}", response.status()).into());
        }
        let mut body = response.into_body();
        let mut got = 0usize;
        let mut first = (n == 0).then(Vec::new);
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                got += data.len();
                stat.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                if let Some(first) = first.as_mut() {
                    first.extend_from_slice(&data);
                }
            }
        }
        if got != *size {
            return Err(format!("GET {path}: {got} bytes, want {size}").into());
        }
        if let Some(first) = first {
            verify_pattern(&first, 0, path)?;
        }
        let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
        stat.latencies_us.lock().map_err(|_| "poisoned")?.push(us);
    }
    Ok(())
}

fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() as f64 * p).ceil() as usize).clamp(1, sorted_us.len()) - 1;
    f64::from(sorted_us[i]) / 1e3
}

// ---------------------------------------------------------------- the bench

fn bench_main(args: &[String]) -> Result<()> {
    let mut p = if args.iter().any(|a| a == "--quick") {
        Params::quick()
    } else {
        Params::full()
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" | "--bench" => {}
            "--runs" => p.runs = value()?.parse()?,
            "--secs" => p.secs = value()?.parse()?,
            "--conns" => p.conns = vec![value()?.parse()?],
            "--set" => {
                p.sets = match value()?.as_str() {
                    "small" => vec![Set::Small],
                    "large" => vec![Set::Large],
                    other => return Err(format!("--set small|large, not {other}").into()),
                }
            }
            "--cache" => {
                p.caches = match value()?.as_str() {
                    "cached" => vec![Cache::Cached],
                    "cold" => vec![Cache::Cold],
                    other => return Err(format!("--cache cached|cold, not {other}").into()),
                }
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let began = Instant::now();
    let dir = place()?;
    let root = dir.path();
    eprintln!(
        "serve bench ({}): {} small files of 1-64 KiB, {} large of {} MiB, in {}",
        p.mode,
        p.small_files,
        p.large_files,
        p.large_size / MIB,
        root.display()
    );
    let (small, large) = make_files(root, &p)?;
    let (small, large) = (Arc::new(small), Arc::new(large));
    let mut servers = [
        ServerProcess::start(Kind::Aiofs, root)?,
        ServerProcess::start(Kind::ServeDir, root)?,
    ];
    let client = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let mut rows = Vec::new();
    for &set in &p.sets {
        let files = match set {
            Set::Small => &small,
            Set::Large => &large,
        };
        for &cache in &p.caches {
            for &conns in &p.conns {
                let mut samples: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
                for run in 0..p.runs {
                    for k in [run % 2, 1 - run % 2] {
                        let s =
                            measure(&client, &mut servers[k], files, set, cache, conns, &p, run)?;
                        samples[k].push(s);
                    }
                }
                let row = Row {
                    set,
                    cache,
                    conns,
                    aiofs: medians(&samples[0]),
                    servedir: medians(&samples[1]),
                };
                eprintln!("{}", row.line());
                rows.push(row);
            }
        }
    }
    drop(servers);
    print_table(&p, &rows, began.elapsed());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn measure(
    client: &tokio::runtime::Runtime,
    server: &mut ServerProcess,
    files: &Arc<Files>,
    set: Set,
    cache: Cache,
    conns: usize,
    p: &Params,
    run: usize,
) -> Result<Sample> {
    let order = match cache {
        Cache::Cached => Order::Random,
        Cache::Cold => {
            // Shuffled with a seed per run, the same for both servers.
            let mut order: Vec<usize> = (0..files.list.len()).collect();
            let mut rng = RandomOffsets::new(run as u64, 99, u64::MAX);
            for i in (1..order.len()).rev() {
                let j = (rng.next().unwrap_or(0) % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            Order::Sweep {
                order,
                next: AtomicUsize::new(0),
                once: set == Set::Small,
            }
        }
    };
    match cache {
        Cache::Cached => warm(files)?,
        Cache::Cold => evict(files)?,
    }
    let u0 = server.usage()?;
    let busy0 = common::machine_busy_us();
    let me0 = common::usage();
    let (secs, bytes, mut latencies) = client.block_on(load(
        server.addr,
        Arc::clone(files),
        conns,
        Arc::new(order),
        p.secs,
    ))?;
    let me = common::usage();
    let busy = common::machine_busy_us();
    let u1 = server.usage()?;
    latencies.sort_unstable();
    let requests = latencies.len() as f64;
    let server_cpu = u1.cpu_us - u0.cpu_us;
    let client_cpu = me.0 - me0.0;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let other = busy0.zip(busy).map_or(0.0, |(b0, b1)| {
        ((b1 - b0 - server_cpu - client_cpu) / (secs * 1e6 * cpus)).max(0.0)
    });
    // A large-file run counts downloads by their bytes (half a file = half a
    // request): at 128 connections few 64 MiB downloads finish within a run.
    let requests = match set {
        Set::Small => requests,
        Set::Large => bytes as f64 / p.large_size as f64,
    };
    let rps = requests / secs;
    eprintln!(
        "  {} run {run}: {} req/s, server {:.0} / client {:.0} CPU µs per request",
        server.kind.name(),
        fmt_rate(rps),
        server_cpu / requests,
        client_cpu / requests
    );
    Ok(Sample {
        rps,
        mbps: bytes as f64 / secs / 1e6,
        p50_ms: percentile_ms(&latencies, 0.50),
        p99_ms: percentile_ms(&latencies, 0.99),
        cpu_us_per_req: server_cpu / requests,
        csw_per_req: (u1.csw - u0.csw) / requests,
        aio_per_req: (u1.aio - u0.aio) / requests,
        nowait_per_req: (u1.nowait - u0.nowait) / requests,
        other,
    })
}

fn medians(samples: &[Sample]) -> Sample {
    let m = |f: fn(&Sample) -> f64| median(samples.iter().map(f));
    Sample {
        rps: m(|s| s.rps),
        mbps: m(|s| s.mbps),
        p50_ms: m(|s| s.p50_ms),
        p99_ms: m(|s| s.p99_ms),
        cpu_us_per_req: m(|s| s.cpu_us_per_req),
        csw_per_req: m(|s| s.csw_per_req),
        aio_per_req: m(|s| s.aio_per_req),
        nowait_per_req: m(|s| s.nowait_per_req),
        other: samples.iter().map(|s| s.other).fold(0.0, f64::max),
    }
}

struct Row {
    set: Set,
    cache: Cache,
    conns: usize,
    aiofs: Sample,
    servedir: Sample,
}

impl Row {
    fn label(&self) -> String {
        let set = match self.set {
            Set::Small => "small",
            Set::Large => "large",
        };
        let cache = match self.cache {
            Cache::Cached => "cached",
            Cache::Cold => "cold",
        };
        format!("{set} {cache} x{}", self.conns)
    }

    fn line(&self) -> String {
        let (a, s) = (&self.aiofs, &self.servedir);
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} | {:.0} | {:.0} | {:.1} | {:.1} | {} / {} | {} |",
            self.label(),
            fmt_rate(a.rps),
            fmt_rate(s.rps),
            ratio(a.rps, s.rps),
            fmt_rate(a.mbps),
            fmt_rate(s.mbps),
            ratio(a.mbps, s.mbps),
            fmt_ms(a.p50_ms),
            fmt_ms(a.p99_ms),
            fmt_ms(s.p50_ms),
            fmt_ms(s.p99_ms),
            a.cpu_us_per_req,
            s.cpu_us_per_req,
            a.csw_per_req,
            s.csw_per_req,
            fmt_count(a.aio_per_req),
            fmt_count(a.nowait_per_req),
            fmt_pct(Some(a.other.max(s.other))),
        )
    }

    /// The targets this row misses, if any.
    fn misses(&self) -> Vec<String> {
        let (a, s) = (&self.aiofs, &self.servedir);
        let mut misses = Vec::new();
        if below(a.rps, s.rps) {
            misses.push(format!("{}: req/s {}", self.label(), ratio(a.rps, s.rps)));
        }
        if below(a.mbps, s.mbps) {
            misses.push(format!("{}: MB/s {}", self.label(), ratio(a.mbps, s.mbps)));
        }
        if self.set == Set::Small && self.cache == Cache::Cached && below(a.rps, 2.0 * s.rps) {
            misses.push(format!(
                "{}: req/s {} (target 2x)",
                self.label(),
                ratio(a.rps, s.rps)
            ));
        }
        misses
    }
}

/// `a < b`, or either unknown.
fn below(a: f64, b: f64) -> bool {
    !matches!(
        a.partial_cmp(&b),
        Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
    )
}

fn ratio(a: f64, b: f64) -> String {
    common::fmt_ratio(common::ratio(a, b))
}

fn fmt_count(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

fn fmt_ms(ms: f64) -> String {
    if !ms.is_finite() {
        "-".into()
    } else if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn print_table(p: &Params, rows: &[Row], took: Duration) {
    println!();
    println!(
        "serve: examples/serve.rs (aiofs) vs tower-http ServeDir (tokio::fs), {} run(s) per row of {} s, medians ({} mode, {:.0} s in all)",
        p.runs,
        p.secs,
        p.mode,
        took.as_secs_f64()
    );
    println!();
    println!(
        "| files, cache, conns | aiofs req/s | ServeDir req/s | ratio | aiofs MB/s | ServeDir MB/s | ratio | aiofs p50 / p99 ms | ServeDir p50 / p99 ms | aiofs CPU µs/req | ServeDir CPU µs/req | aiofs csw/req | ServeDir csw/req | aiofs AIO / cache reads per req | other% |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{}", row.line());
    }
    let noisy: Vec<String> = rows
        .iter()
        .filter(|r| r.aiofs.other.max(r.servedir.other) > 0.10)
        .map(Row::label)
        .collect();
    if !noisy.is_empty() {
        println!();
        println!(
            "warning: other programs used more than 10% of the CPUs during {}",
            noisy.join(", ")
        );
    }
    let misses: Vec<String> = rows.iter().flat_map(Row::misses).collect();
    println!();
    if misses.is_empty() {
        println!(
            "targets: every row at least ServeDir's req/s and MB/s, cached small files at least 2x: met"
        );
    } else {
        println!("targets missed: {}", misses.join("; "));
    }
}

/// Random numbers in `0..blocks`, deterministic per seed and task.
struct RandomOffsets {
    rng: common::Rng,
    blocks: u64,
}

impl RandomOffsets {
    fn new(seed: u64, task: usize, blocks: u64) -> RandomOffsets {
        RandomOffsets {
            rng: common::Rng::new(seed ^ (task as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            blocks: blocks.max(1),
        }
    }
}

impl Iterator for RandomOffsets {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        Some(self.rng.next_u64() % self.blocks)
    }
}
