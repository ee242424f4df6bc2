//! A bad `AIOFS_NOTIFIER` fails the first request with `InvalidInput` naming the
//! variable. Process-wide state: its own binary.

#[tokio::test]
async fn bad_notifier_variable_is_invalid_input_naming_it() {
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe { std::env::set_var("AIOFS_NOTIFIER", "carrier-pigeon") };
    let file = aiofs::File::from_std(tempfile::tempfile().unwrap());
    for _ in 0..2 {
        let (res, buf) = file.write_at(b"x".to_vec(), 0).await;
        let err = res.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("AIOFS_NOTIFIER"), "{err}");
        assert_eq!(buf, b"x", "the buffer comes back");
    }
    assert_eq!(aiofs::stats().submitted, 0);
}
