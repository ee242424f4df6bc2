//! The main job: real file I/O through aiofs on its own temp files, printing
//! what it did; then a short run of the comparison of `benches/compare`
//! (aiofs with each notifier and its switches, `tokio::fs`, `spawn_blocking`,
//! tokio-uring and `std` on the same workloads, in one run, as ratios), with
//! its progress on stderr.
//!
//! ```text
//! cargo run --release --example demo
//! cargo run --release --example demo -- --no-compare   # the I/O part only
//! ```

#[path = "../benches/compare/workloads.rs"]
#[allow(unreachable_pub)]
mod workloads;

use std::sync::Arc;
use std::time::Instant;

use aiofs::File;

const FILE_SIZE: usize = 64 << 20; // 64 MiB
const CHUNK: usize = 1 << 20; // 1 MiB
const READS: usize = 10_000;
const READ_SIZE: usize = 4096;

fn main() -> std::io::Result<()> {
    // The comparison runs each sample in a new process of this program.
    if let Some(res) = workloads::sample_process_main() {
        return res;
    }
    tokio::runtime::Runtime::new()?.block_on(io_demo())?;
    if std::env::args().any(|a| a == "--no-compare") {
        return Ok(());
    }
    println!();
    println!(
        "comparison, short run (benches/compare --quick; the full run: cargo bench --bench compare):"
    );
    let opts = workloads::Options::quick();
    let started = Instant::now();
    let mut step = 0usize;
    let rows = workloads::run(&opts, &mut |msg: &str| {
        step += 1;
        eprintln!(
            "[{step:3}] {:5.1} s  {msg}",
            started.elapsed().as_secs_f64()
        );
    })?;
    workloads::print_table(&rows);
    Ok(())
}

async fn io_demo() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("demo.dat");
    println!("aiofs demo: temp file {}", path.display());

    // 1. Write 64 MiB in 1 MiB chunks, all in flight at once, then sync.
    let file = Arc::new(File::create_new(&path).await?);
    let t = Instant::now();
    let mut writes = Vec::new();
    for i in 0..FILE_SIZE / CHUNK {
        let file = Arc::clone(&file);
        let chunk: Vec<u8> = (0..CHUNK).map(|j| pattern(i * CHUNK + j)).collect();
        writes.push(tokio::spawn(async move {
            let (res, _) = file.write_all_at(chunk, (i * CHUNK) as u64).await;
            res
        }));
    }
    for w in writes {
        w.await.map_err(std::io::Error::other)??;
    }
    file.sync_all().await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "wrote  {} MiB in {} concurrent write_all_at + sync_all: {:.1} ms ({:.0} MB/s)",
        FILE_SIZE >> 20,
        FILE_SIZE / CHUNK,
        secs * 1e3,
        FILE_SIZE as f64 / secs / 1e6
    );

    // 2. 10,000 random 4 KiB reads, 128 in flight, every byte verified.
    let t = Instant::now();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut tasks = tokio::task::JoinSet::new();
    let mut verified = 0usize;
    for n in 0..READS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let pos = (seed as usize % (FILE_SIZE - READ_SIZE)) as u64;
        let file = Arc::clone(&file);
        tasks.spawn(async move {
            let (res, buf) = file.read_exact_at(Vec::with_capacity(READ_SIZE), pos).await;
            res.map(|()| (pos, buf))
        });
        if tasks.len() >= 128 || n == READS - 1 {
            while let Some(done) = if tasks.len() >= 128 || n == READS - 1 {
                tasks.join_next().await
            } else {
                None
            } {
                let (pos, buf) = done.map_err(std::io::Error::other)??;
                for (k, &b) in buf.iter().enumerate() {
                    if b != pattern(pos as usize + k) {
                        return Err(std::io::Error::other(format!(
                            "wrong byte at {}",
                            pos as usize + k
                        )));
                    }
                }
                verified += buf.len();
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "read   {READS} random {READ_SIZE}-byte blocks (128 in flight), {verified} bytes verified: {:.1} ms ({:.0} reads/s)",
        secs * 1e3,
        READS as f64 / secs
    );

    // 3. Read past the end of the file.
    let (res, buf) = file.read_at(Vec::with_capacity(16), FILE_SIZE as u64).await;
    println!(
        "read at end of file: {:?} bytes, buffer length {}",
        res?,
        buf.len()
    );

    let s = aiofs::stats();
    println!(
        "stats: submitted {} completed {} in_flight {} signals {} tokens {} scans {} eagain_retries {} waited {}",
        s.submitted,
        s.completed,
        s.in_flight,
        s.signals,
        s.tokens,
        s.scans,
        s.eagain_retries,
        s.waited
    );
    Ok(())
}

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 12)) as u8
}
