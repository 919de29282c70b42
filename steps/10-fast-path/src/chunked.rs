//! The chunked transfer coding, followed byte by byte without decoding.
//!
//! A chunked body is forwarded as it arrived — the chunk sizes, extensions
//! and trailers included — so the proxy copies bytes instead of rebuilding
//! frames. It still has to know where the body ends, and that is where
//! request smuggling lives: if the proxy thinks a body ends at one byte
//! and the server behind it at another, the bytes in between are read by
//! the server as a request the proxy never checked. So this reader is
//! strict where parsers have disagreed: sizes are hex digits only (no
//! sign, no `0x`, at most 15 digits), every line ends in CRLF (a bare LF
//! or CR is an error, not a line end), a chunk's data must be followed by
//! CRLF, and the lines of a chunk header and the trailer section are
//! bounded.
//!
//! [`Chunked::advance`] takes whatever bytes have arrived and says how many
//! belong to the body; it keeps its state between calls, so a body may
//! arrive split anywhere. With `data`, it also reports the chunks' data
//! (for a client that cannot take chunked: HTTP/1.0).

/// The longest chunk-size line (size and extensions) accepted.
pub const MAX_LINE: usize = 4096;

/// The largest trailer section accepted.
pub const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk size is not hex")]
    BadSize,
    #[error("chunk size too large")]
    SizeOverflow,
    #[error("chunk line too long")]
    LineTooLong,
    #[error("line not ended by CRLF")]
    BadLineEnd,
    #[error("chunk data not followed by CRLF")]
    BadDataEnd,
    #[error("trailer section too large")]
    TrailersTooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size.
    Size {
        digits: u8,
    },
    /// After the size: extensions (`;name=value`) up to CR.
    Extension,
    /// Expecting the LF of a size line.
    SizeLf,
    /// Inside a chunk's data.
    Data,
    /// Expecting the CR, then the LF, after a chunk's data.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// Expecting the LF of a trailer line.
    TrailerLf,
    /// Expecting the LF of the final empty line.
    FinalLf,
    Done,
}

/// Where a chunked body is, between calls.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    /// The chunk size being read, then the data bytes left in the chunk.
    remaining: u64,
    /// Bytes of the current size line, or of the whole trailer section.
    line: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Self::new()
    }
}

impl Chunked {
    pub fn new() -> Self {
        Self {
            state: State::Size { digits: 0 },
            remaining: 0,
            line: 0,
        }
    }

    /// Has the whole body (its last chunk and trailers) gone by?
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Follow `bytes`; returns how many of them belong to the body (all of
    /// them, unless the body ends inside). Chunk data is passed to `data`.
    pub fn advance(
        &mut self,
        bytes: &[u8],
        data: &mut impl FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let mut at = 0;
        while at < bytes.len() {
            if self.state == State::Data {
                let take =
                    (bytes.len() - at).min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                data(&bytes[at..at + take]);
                at += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let byte = bytes[at];
            at += 1;
            self.state = match self.state {
                State::Size { digits } => match hex(byte) {
                    Some(value) => {
                        if digits == 15 {
                            return Err(ChunkError::SizeOverflow);
                        }
                        self.remaining = self.remaining << 4 | u64::from(value);
                        self.line += 1;
                        State::Size { digits: digits + 1 }
                    }
                    None if digits == 0 => return Err(ChunkError::BadSize),
                    None => match byte {
                        b';' => {
                            self.line += 1;
                            State::Extension
                        }
                        b'\r' => State::SizeLf,
                        _ => return Err(ChunkError::BadSize),
                    },
                },
                State::Extension => match byte {
                    b'\r' => State::SizeLf,
                    b'\n' => return Err(ChunkError::BadLineEnd),
                    _ => {
                        self.line += 1;
                        if self.line > MAX_LINE {
                            return Err(ChunkError::LineTooLong);
                        }
                        State::Extension
                    }
                },
                State::SizeLf => match byte {
                    b'\n' => {
                        self.line = 0;
                        if self.remaining == 0 {
                            State::TrailerStart
                        } else {
                            State::Data
                        }
                    }
                    _ => return Err(ChunkError::BadLineEnd),
                },
                State::Data => unreachable!("handled above"),
                State::DataCr => match byte {
                    b'\r' => State::DataLf,
                    _ => return Err(ChunkError::BadDataEnd),
                },
                State::DataLf => match byte {
                    b'\n' => State::Size { digits: 0 },
                    _ => return Err(ChunkError::BadDataEnd),
                },
                State::TrailerStart => match byte {
                    b'\r' => State::FinalLf,
                    b'\n' => return Err(ChunkError::BadLineEnd),
                    _ => self.trailer_byte()?,
                },
                State::Trailer => match byte {
                    b'\r' => State::TrailerLf,
                    b'\n' => return Err(ChunkError::BadLineEnd),
                    _ => self.trailer_byte()?,
                },
                State::TrailerLf => match byte {
                    b'\n' => State::TrailerStart,
                    _ => return Err(ChunkError::BadLineEnd),
                },
                State::FinalLf => match byte {
                    b'\n' => {
                        self.state = State::Done;
                        return Ok(at);
                    }
                    _ => return Err(ChunkError::BadLineEnd),
                },
                State::Done => return Ok(at - 1),
            };
        }
        Ok(at)
    }

    fn trailer_byte(&mut self) -> Result<State, ChunkError> {
        self.line += 1;
        if self.line > MAX_TRAILERS {
            return Err(ChunkError::TrailersTooLarge);
        }
        Ok(State::Trailer)
    }
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `body` in pieces of `step` bytes; the bytes that belong to the
    /// body, and the data.
    fn follow(body: &[u8], step: usize) -> Result<(usize, Vec<u8>), ChunkError> {
        let mut chunked = Chunked::new();
        let mut data = Vec::new();
        let mut taken = 0;
        for piece in body.chunks(step) {
            let used = chunked.advance(piece, &mut |d| data.extend_from_slice(d))?;
            taken += used;
            if chunked.is_done() {
                break;
            }
        }
        Ok((taken, data))
    }

    #[test]
    fn a_body_split_anywhere_ends_in_the_same_place() {
        let body = b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\nNEXT";
        for step in 1..body.len() {
            let (taken, data) = follow(body, step).unwrap();
            assert_eq!(taken, body.len() - 4, "step {step}");
            assert_eq!(data, b"hello0123456789");
        }
    }

    #[test]
    fn what_parsers_disagree_about_is_an_error() {
        for body in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"1000000000000000\r\n",
            b"0\r\n\n",
            b"0\r\nX: 1\n\r\n",
        ] {
            assert!(
                follow(body, 1).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
