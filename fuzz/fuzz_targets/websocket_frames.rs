//! Step 06's frame tracker against arbitrary bytes cut at arbitrary
//! places: however the bytes arrive, it must find the same boundaries and
//! count the same close frames, and never claim more bytes than it got.

#![no_main]

use libfuzzer_sys::fuzz_target;
use step06_websocket::frames::Frames;

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (bytes, cuts) = input;
    // All at once.
    let mut whole = Frames::new();
    assert_eq!(whole.advance(&bytes, false), bytes.len());
    // In pieces whose sizes come from `cuts`, stopping at each boundary as
    // the tunnel does before it injects a frame of its own.
    let mut pieces = Frames::new();
    let mut at = 0;
    let mut sizes = cuts.iter().map(|c| usize::from(*c) + 1).cycle();
    while at < bytes.len() {
        let end = (at + sizes.next().unwrap_or(bytes.len())).min(bytes.len());
        let mut chunk = &bytes[at..end];
        while !chunk.is_empty() {
            let taken = pieces.advance(chunk, true);
            assert!(taken <= chunk.len());
            if taken == 0 {
                // At a boundary already: the next byte starts a frame.
                assert!(pieces.at_boundary());
                let rest = pieces.advance(&chunk[..1], false);
                assert_eq!(rest, 1);
                chunk = &chunk[1..];
            } else {
                chunk = &chunk[taken..];
            }
        }
        at = end;
    }
    assert_eq!(whole.at_boundary(), pieces.at_boundary());
    assert_eq!(whole.closes(), pieces.closes());
});
