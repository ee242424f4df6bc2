//! `Config::install`: validation, idempotence, refusal of a different config, and
//! the in-flight limit with FIFO order. Process-wide state: its own binary, one test.

use std::io::ErrorKind;
use std::sync::Arc;

use aiofs::{Config, File};

#[test]
fn install_validates_refuses_a_different_config_and_limits_in_flight() {
    // Bad signal numbers: not a signal, forbidden, reserved by glibc.
    let past_max = libc::SIGRTMAX() + 1;
    for signo in [
        0,
        -1,
        9,
        19,
        4,
        8,
        11,
        32,
        33,
        past_max,
        10_000,
        i32::MIN,
        i32::MAX,
    ] {
        let err = Config::new().signal(signo).install().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "signal {signo}: {err}");
        assert!(err.to_string().contains(&signo.to_string()), "{err}");
    }
    let err = Config::new().max_in_flight(0).install().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    // The notifier is left to AIOFS_NOTIFIER so CI runs this under both.
    let limit = 2;
    let config = || {
        Config::new()
            .max_in_flight(limit)
            .signal(libc::SIGRTMIN() + 7)
    };
    config().install().expect("first install");
    config().install().expect("same config again");
    let err = Config::new().max_in_flight(3).install().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tmp = tempfile::tempfile().unwrap();
        let file = Arc::new(File::from_std(tmp));

        // 200 writes of their own index to the same 8 bytes, polled in order.
        // With a limit of 2 and FIFO queueing the last one submitted lands last,
        // unless two in flight race: glibc runs one request per fd at a time,
        // in submission order.
        let before = aiofs::stats();
        let writes: Vec<_> = (0..200u64)
            .map(|i| file.write_all_at(i.to_le_bytes().to_vec(), 0))
            .collect();
        let results = futures::future::join_all(writes).await;
        for (res, _) in results {
            res.unwrap();
        }
        let after = aiofs::stats();
        assert!(after.waited - before.waited >= 150, "{before:?} {after:?}");
        let (res, buf) = file.read_at(Vec::with_capacity(8), 0).await;
        assert_eq!(res.unwrap(), 8);
        assert_eq!(u64::from_le_bytes(buf.try_into().unwrap()), 199);

        // Many concurrent readers never see more than `limit` in flight.
        file.write_all_at(vec![5u8; 1 << 16], 0).await.0.unwrap();
        let mut tasks = Vec::new();
        for i in 0..500u64 {
            let file = Arc::clone(&file);
            tasks.push(tokio::spawn(async move {
                let (res, buf) = file
                    .read_at(Vec::with_capacity(64), (i * 64) % (1 << 16))
                    .await;
                assert_eq!(res.unwrap(), 64);
                assert!(buf.iter().all(|&b| b == 5));
                aiofs::stats().in_flight
            }));
        }
        for t in tasks {
            let seen = t.await.unwrap();
            assert!(
                seen <= limit as u64,
                "{seen} in flight over the limit {limit}"
            );
        }
    });

    // After the start: the same config is still fine, a different one is refused.
    config().install().expect("same config after start");
    let err = Config::new().max_in_flight(64).install().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains("already started"), "{err}");

    // The edges of the valid numbers pass validation: refused only as a
    // different configuration.
    for signo in [
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGSYS,
        libc::SIGRTMIN(),
        libc::SIGRTMAX(),
    ] {
        let err = Config::new().signal(signo).install().unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::AlreadyExists,
            "signal {signo}: {err}"
        );
    }
}
