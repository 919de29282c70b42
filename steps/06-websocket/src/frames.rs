//! Just enough of websocket framing (RFC 6455 §5.2) for a proxy to know
//! where one frame ends and the next begins.
//!
//! A tunnel copies bytes without reading them — except when the proxy
//! itself wants to say something. To close a tunnel cleanly (idle too long,
//! shutting down) it sends each side a close frame, and a frame may only
//! start where the previous one ended: injected into the middle of a frame,
//! it would be read as payload and corrupt the stream. So each direction
//! runs its bytes through a [`Frames`] tracker, which parses frame headers
//! and counts payload bytes without copying or buffering them.
//!
//! Left out on purpose: everything a websocket *endpoint* does with frames —
//! unmasking, reassembling messages, checking UTF-8, answering pings. The
//! proxy carries frames; the endpoints speak the protocol.

/// The opcode of a close frame.
const CLOSE: u8 = 0x8;

/// Where a byte stream stands in its sequence of frames.
#[derive(Debug, Clone, Default)]
pub struct Frames {
    /// Header bytes seen so far of the frame being read (at most 14).
    head: [u8; 14],
    head_len: usize,
    /// Payload bytes still to come of the current frame, once its header is complete.
    payload_left: u64,
    /// Is the current frame (whose header is complete) a close frame?
    in_close: bool,
    /// How many close frames have passed completely.
    closes: u32,
}

impl Frames {
    pub fn new() -> Self {
        Self::default()
    }

    /// True between frames: the next byte starts a new frame.
    pub fn at_boundary(&self) -> bool {
        self.head_len == 0 && self.payload_left == 0
    }

    /// Close frames that have passed completely.
    pub fn closes(&self) -> u32 {
        self.closes
    }

    /// Account for `bytes`. With `stop_at_boundary`, stop at the first frame
    /// boundary reached and return how many bytes that took (zero when
    /// already at one); otherwise take everything.
    pub fn advance(&mut self, bytes: &[u8], stop_at_boundary: bool) -> usize {
        let mut used = 0;
        while used < bytes.len() && !(stop_at_boundary && self.at_boundary()) {
            if self.payload_left > 0 {
                let left = usize::try_from(self.payload_left).unwrap_or(usize::MAX);
                let take = (bytes.len() - used).min(left);
                used += take;
                self.payload_left -= take as u64;
                if self.payload_left == 0 {
                    self.frame_done();
                }
                continue;
            }
            self.head[self.head_len] = bytes[used];
            self.head_len += 1;
            used += 1;
            if let Some(payload) = self.header_complete() {
                self.in_close = self.head[0] & 0x0f == CLOSE;
                self.head_len = 0;
                self.payload_left = payload;
                if payload == 0 {
                    self.frame_done();
                }
            }
        }
        used
    }

    /// The payload length once the header is complete (2–14 bytes: two
    /// fixed, 0/2/8 of extended length, 0/4 of masking key).
    fn header_complete(&self) -> Option<u64> {
        if self.head_len < 2 {
            return None;
        }
        let masked = self.head[1] & 0x80 != 0;
        let (extended, length) = match self.head[1] & 0x7f {
            126 => (2, None),
            127 => (8, None),
            short => (0, Some(u64::from(short))),
        };
        let needed = 2 + extended + if masked { 4 } else { 0 };
        if self.head_len < needed {
            return None;
        }
        Some(length.unwrap_or_else(|| {
            self.head[2..2 + extended]
                .iter()
                .fold(0u64, |n, b| (n << 8) | u64::from(*b))
        }))
    }

    fn frame_done(&mut self) {
        if self.in_close {
            self.closes += 1;
        }
        self.in_close = false;
    }
}

/// Who a frame is written to. RFC 6455 §5.3: frames a client sends are
/// masked, frames a server sends are not. The proxy is the client of the
/// backend and the server of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toward {
    Client,
    Backend,
}

/// A close frame with `code` and a short `reason` (cut to fit a control
/// frame's 125-byte payload).
pub fn close_frame(code: u16, reason: &str, toward: Toward) -> Vec<u8> {
    let mut reason_end = reason.len().min(123);
    while !reason.is_char_boundary(reason_end) {
        reason_end -= 1;
    }
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..reason_end]);
    control_frame(CLOSE, &payload, toward)
}

/// A control frame (close 0x8, ping 0x9, pong 0xA): FIN set, one frame,
/// a payload of at most 125 bytes (RFC 6455 §5.5; longer is cut), masked
/// with a fresh random key when it goes to the backend.
pub fn control_frame(opcode: u8, payload: &[u8], toward: Toward) -> Vec<u8> {
    let payload = &payload[..payload.len().min(125)];
    let length = payload.len() as u8;
    match toward {
        Toward::Client => {
            let mut frame = vec![0x80 | opcode, length];
            frame.extend_from_slice(payload);
            frame
        }
        Toward::Backend => {
            let key: [u8; 4] = rand::random();
            let mut frame = vec![0x80 | opcode, 0x80 | length];
            frame.extend(key);
            frame.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
            frame
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as an endpoint would write it.
    fn frame(opcode: u8, payload_len: usize, masked: bool) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload_len {
            0..=125 => out.push(mask_bit | payload_len as u8),
            126..=65535 => {
                out.push(mask_bit | 126);
                out.extend((payload_len as u16).to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend((payload_len as u64).to_be_bytes());
            }
        }
        if masked {
            out.extend([1, 2, 3, 4]);
        }
        out.extend(std::iter::repeat_n(0xAA, payload_len));
        out
    }

    /// Three frames of each length encoding, masked and not, then a close.
    fn stream() -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut boundaries = Vec::new();
        for (opcode, len, masked) in [
            (0x1, 5, false),
            (0x2, 0, true),
            (0x2, 300, true),
            (0x9, 3, false),
            (0x2, 70_000, false),
            (CLOSE, 2, true),
        ] {
            bytes.extend(frame(opcode, len, masked));
            boundaries.push(bytes.len());
        }
        (bytes, boundaries)
    }

    #[test]
    fn boundaries_are_found_however_the_bytes_are_split() {
        let (bytes, boundaries) = stream();
        for chunk in [1, 2, 3, 7, 13, 1000, bytes.len()] {
            let mut frames = Frames::new();
            let mut seen = Vec::new();
            let mut offset = 0;
            for piece in bytes.chunks(chunk) {
                let mut rest = piece;
                while !rest.is_empty() {
                    let used = match frames.advance(rest, true) {
                        0 => frames.advance(&rest[..1], false),
                        n => n,
                    };
                    offset += used;
                    rest = &rest[used..];
                    if frames.at_boundary() {
                        seen.push(offset);
                    }
                }
            }
            assert_eq!(seen, boundaries, "chunks of {chunk}");
            assert_eq!(frames.closes(), 1);
        }
    }

    #[test]
    fn taking_everything_ends_at_the_same_place() {
        let (bytes, _) = stream();
        let mut frames = Frames::new();
        assert_eq!(frames.advance(&bytes[..10], false), 10);
        assert!(!frames.at_boundary());
        assert_eq!(frames.advance(&bytes[10..], false), bytes.len() - 10);
        assert!(frames.at_boundary());
        assert_eq!(frames.closes(), 1);
    }

    #[test]
    fn a_stop_at_a_boundary_takes_nothing() {
        let (bytes, boundaries) = stream();
        let mut frames = Frames::new();
        assert_eq!(frames.advance(&bytes, true), 0);
        assert_eq!(frames.advance(&bytes[..1], false), 1);
        assert_eq!(frames.advance(&bytes[1..], true), boundaries[0] - 1);
    }

    #[test]
    fn close_frames_parse_back() {
        for toward in [Toward::Client, Toward::Backend] {
            let frame = close_frame(1001, "idle for 60s", toward);
            let mut frames = Frames::new();
            assert_eq!(frames.advance(&frame, false), frame.len());
            assert!(frames.at_boundary());
            assert_eq!(frames.closes(), 1);
            assert_eq!(frame[1] & 0x80 != 0, toward == Toward::Backend);
        }
        let long = close_frame(1001, &"é".repeat(100), Toward::Client);
        assert!(long.len() <= 2 + 125);
    }
}
