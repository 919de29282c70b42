//! Step 10's chunked reader: wherever the bytes are split, it ends the
//! body at the same byte with the same data (or fails the same way); a
//! size line it accepts, httparse's `parse_chunk_size` reads as the same
//! size (it may be more lenient than us, never stricter).

#![no_main]

use libfuzzer_sys::fuzz_target;
use step10_fast_path::chunked::Chunked;

/// Feed `pieces` in turn: the bytes taken until the body ended (or the
/// error), and the data.
fn follow(pieces: &[&[u8]]) -> (Result<usize, String>, Vec<u8>) {
    let mut chunked = Chunked::new();
    let mut data = Vec::new();
    let mut taken = 0;
    for piece in pieces {
        match chunked.advance(piece, &mut |d| data.extend_from_slice(d)) {
            Ok(used) => taken += used,
            Err(e) => return (Err(e.to_string()), data),
        }
        if chunked.is_done() {
            return (Ok(taken), data);
        }
    }
    (Ok(taken), data)
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, body)) = input.split_first() else {
        return;
    };
    let (whole, whole_data) = follow(&[body]);
    let at = (split as usize).min(body.len());
    let (first, rest) = body.split_at(at);
    let (split_result, split_data) = follow(&[first, rest]);
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    let (bytewise, bytewise_data) = follow(&bytes);
    match (&whole, &split_result, &bytewise) {
        (Ok(a), Ok(b), Ok(c)) => assert!(a == b && b == c, "{a} {b} {c}"),
        (Err(_), Err(_), Err(_)) => {}
        _ => panic!("{whole:?} {split_result:?} {bytewise:?}"),
    }
    if whole.is_ok() {
        assert_eq!(whole_data, split_data);
        assert_eq!(whole_data, bytewise_data);
    }
    // The first size line, against httparse.
    let Some(end) = body.windows(2).position(|w| w == b"\r\n") else {
        return;
    };
    let line = &body[..end + 2];
    let mut ours = Chunked::new();
    let mut size_seen = 0u64;
    let accepted = ours
        .advance(line, &mut |d| size_seen += d.len() as u64)
        .is_ok();
    if accepted {
        match httparse::parse_chunk_size(line) {
            Ok(httparse::Status::Complete((used, size))) => {
                assert_eq!(used, line.len());
                // Our size is what the data callback will see; check it by
                // feeding that many bytes.
                let mut check = Chunked::new();
                let mut data_len = 0u64;
                let padded: Vec<u8> = line.iter().copied().chain(std::iter::repeat_n(b'x', size.min(1 << 16) as usize)).collect();
                let _ = check.advance(&padded, &mut |d| data_len += d.len() as u64);
                assert_eq!(data_len, size.min(1 << 16), "size of {:?}", String::from_utf8_lossy(line));
            }
            other => panic!("we accepted {:?}, httparse: {other:?}", String::from_utf8_lossy(line)),
        }
    }
});
