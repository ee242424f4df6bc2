//! A bad `AIOFS_SIGNAL` fails the first request with `InvalidInput` naming the
//! variable. Process-wide state: its own binary.

#[tokio::test]
async fn bad_signal_variable_is_invalid_input_naming_it() {
    // SAFETY: set before any other thread of this test reads the environment.
    unsafe { std::env::set_var("AIOFS_SIGNAL", "9") };
    let file = aiofs::File::from_std(tempfile::tempfile().unwrap());
    let (res, _) = file.read_at(Vec::with_capacity(4), 0).await;
    let err = res.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("AIOFS_SIGNAL"), "{err}");
    assert_eq!(aiofs::stats().submitted, 0);
}
