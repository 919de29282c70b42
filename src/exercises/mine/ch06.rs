//! Chapter 6's exercises: writing a frame, and reading where one ends.

pub use step06_websocket::frames::Toward;

/// Exercise 1. A ping frame carrying `payload`, as the proxy would send it
/// to keep an idle tunnel alive (a pong must come back, which proves the
/// far side is still there). RFC 6455 §5.2: the first byte is FIN (0x80)
/// and the opcode (ping is 0x9); the second is the mask bit and the
/// payload length (a control frame's payload is at most 125 bytes: cut a
/// longer one); then, if masked, a 4-byte key; then the payload, each byte
/// XORed with `key[i % 4]` if masked. Frames *to the backend* must be
/// masked with a random key (the proxy is the backend's client, and a
/// server closes the connection on an unmasked client frame); frames to the
/// client must not be.
///
/// Hint: `rand::random::<[u8; 4]>()` makes a key. Step 06 writes its close
/// frames the same way (`frames.rs`).
pub fn ping_frame(payload: &[u8], toward: Toward) -> Vec<u8> {
    // A first attempt: the same bytes whichever way it goes.
    let _ = toward;
    let mut frame = vec![0x89, payload.len() as u8];
    frame.extend_from_slice(payload);
    frame
}

/// Exercise 2. How long is the frame whose first bytes are `start`: header,
/// mask key and payload together? `None` when `start` is too short to say.
/// The second byte's low 7 bits are the payload length, except 126 (the
/// length is the next 2 bytes, big-endian) and 127 (the next 8 bytes); its
/// high bit says a 4-byte mask key follows the length.
///
/// Hint: work out how many header bytes the frame has (2, 4 or 10, plus 4
/// when masked) before reading the length.
pub fn frame_length(start: &[u8]) -> Option<u64> {
    // A first attempt: short frames only, and no mask key.
    let second = *start.get(1)?;
    Some(2 + u64::from(second & 0x7f))
}
