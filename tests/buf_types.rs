//! Every buffer type through `read_at` / `write_at`, including `bytes` (feature)
//! and `AlignedBuf`.

use aiofs::File;
use aiofs::buf::{AlignedBuf, IoBuf};

fn file_with(data: &[u8]) -> File {
    let mut f = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut f, data).unwrap();
    File::from_std(f)
}

#[tokio::test]
async fn vec_len_and_capacity_rules() {
    let file = file_with(b"0123456789");
    // Capacity is what a read fills, whatever the length was.
    let mut v = Vec::with_capacity(6);
    v.extend_from_slice(b"zz");
    let (res, v) = file.read_at(v, 2).await;
    assert_eq!(res.unwrap(), 6);
    assert_eq!(v, b"234567");
    // A short read shrinks the length to the count.
    let (res, v) = file.read_at(vec![9u8; 8], 6).await;
    assert_eq!(res.unwrap(), 4);
    assert_eq!(v, b"6789");
}

#[tokio::test]
async fn boxed_slice_keeps_its_length() {
    let file = file_with(b"abcdef");
    let (res, b) = file.read_at(vec![b'.'; 8].into_boxed_slice(), 3).await;
    assert_eq!(res.unwrap(), 3);
    assert_eq!(&b[..], b"def.....");
}

#[tokio::test]
async fn aligned_buf_round_trip() {
    let file = File::from_std(tempfile::tempfile().unwrap());
    let mut buf = AlignedBuf::new(4096, 8192);
    assert_eq!(buf.stable_ptr() as usize % 4096, 0);
    buf.resize(8192, 0x5a);
    let (res, _) = file.write_at(buf, 0).await;
    assert_eq!(res.unwrap(), 8192);
    let (res, buf) = file.read_at(AlignedBuf::new(512, 4096), 4096).await;
    assert_eq!(res.unwrap(), 4096);
    assert_eq!(buf.len(), 4096);
    assert!(buf.iter().all(|&b| b == 0x5a));
    let (res, buf) = file.read_at(buf, 8000).await;
    assert_eq!(res.unwrap(), 192);
    assert_eq!(buf.len(), 192);
}

#[tokio::test]
async fn static_and_string_writes() {
    let file = File::from_std(tempfile::tempfile().unwrap());
    file.write_all_at(&b"static "[..], 0).await.0.unwrap();
    file.write_all_at("str ", 7).await.0.unwrap();
    file.write_all_at(String::from("string"), 11)
        .await
        .0
        .unwrap();
    let (res, v) = file.read_at(Vec::with_capacity(64), 0).await;
    assert_eq!(res.unwrap(), 17);
    assert_eq!(v, b"static str string");
}

#[cfg(feature = "bytes")]
#[tokio::test]
async fn bytes_and_bytes_mut() {
    let file = File::from_std(tempfile::tempfile().unwrap());
    let (res, _) = file
        .write_at(bytes::Bytes::from_static(b"hello bytes"), 0)
        .await;
    assert_eq!(res.unwrap(), 11);
    let (res, b) = file.read_at(bytes::BytesMut::with_capacity(5), 6).await;
    assert_eq!(res.unwrap(), 5);
    assert_eq!(&b[..], b"bytes");
}
