//! Content codings — `gzip`, `br`, `zstd` — undone and done again, for a
//! body held whole in memory.
//!
//! A proxy that edits or compresses a body must know how it is encoded
//! (`Content-Encoding`) and which encodings the client takes
//! (`Accept-Encoding`). Decoding is bounded: a few kilobytes of gzip can
//! inflate to gigabytes (a "zip bomb"), so decoding stops one byte past
//! the limit and says the body is too large. Left out: several codings
//! stacked on one body, and `deflate` (its two incompatible readings made
//! every client distrust it).

use std::io::{Read, Write};

use hyper::HeaderMap;
use hyper::header::{ACCEPT_ENCODING, CONTENT_ENCODING};

/// One content coding this proxy reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Brotli,
    Zstd,
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodingError {
    #[error("it decodes to more than {0} bytes")]
    TooLarge(usize),
    #[error("it is not valid {0}: {1}")]
    Invalid(&'static str, std::io::Error),
}

impl Coding {
    /// The response's coding; None when it is one this proxy does not
    /// read, or several.
    pub fn of(headers: &HeaderMap) -> Option<Self> {
        let mut codings = headers
            .get_all(CONTENT_ENCODING)
            .iter()
            .flat_map(|line| line.to_str().unwrap_or("?").split(','))
            .map(str::trim)
            .filter(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
        let coding = match codings.next() {
            None => return Some(Self::Identity),
            Some(coding) => Self::named(coding)?,
        };
        codings.next().is_none().then_some(coding)
    }

    fn named(token: &str) -> Option<Self> {
        match token.to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Some(Self::Gzip),
            "br" => Some(Self::Brotli),
            "zstd" => Some(Self::Zstd),
            _ => None,
        }
    }

    pub fn token(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
        }
    }

    /// The coding a client's `Accept-Encoding` prefers, of those this
    /// proxy writes: the highest q, `br` before `zstd` before `gzip` on a
    /// tie; `Identity` when it accepts none (or sent no header).
    pub fn preferred(request: &HeaderMap) -> Self {
        let mut best = (0.0_f32, Self::Identity);
        for element in request
            .get_all(ACCEPT_ENCODING)
            .iter()
            .flat_map(|line| line.to_str().unwrap_or("").split(','))
        {
            let mut parts = element.split(';').map(str::trim);
            let Some(coding) = parts.next().and_then(Self::named) else {
                continue;
            };
            let quality = parts
                .find_map(|p| p.strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())
                .unwrap_or(0.0);
            let rank = |c: Self| match c {
                Self::Brotli => 3,
                Self::Zstd => 2,
                Self::Gzip => 1,
                Self::Identity => 0,
            };
            if quality > best.0
                || (quality == best.0 && quality > 0.0 && rank(coding) > rank(best.1))
            {
                best = (quality, coding);
            }
        }
        best.1
    }

    /// `body` decoded, if it decodes to at most `limit` bytes.
    pub fn decode(self, body: &[u8], limit: usize) -> Result<Vec<u8>, CodingError> {
        let reader: Box<dyn Read + '_> = match self {
            Self::Identity => return Ok(body.to_vec()),
            Self::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body)),
            Self::Brotli => Box::new(brotli::Decompressor::new(body, 4096)),
            Self::Zstd => Box::new(
                zstd::stream::read::Decoder::new(body)
                    .map_err(|error| CodingError::Invalid(self.token(), error))?,
            ),
        };
        let mut decoded = Vec::new();
        reader
            .take(limit as u64 + 1)
            .read_to_end(&mut decoded)
            .map_err(|error| CodingError::Invalid(self.token(), error))?;
        if decoded.len() > limit {
            return Err(CodingError::TooLarge(limit));
        }
        Ok(decoded)
    }

    /// `body` encoded (at a level that favours speed: this runs per
    /// response, not once at build time).
    pub fn encode(self, body: &[u8]) -> Vec<u8> {
        let written = match self {
            Self::Identity => return body.to_vec(),
            Self::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(5));
                encoder.write_all(body).and_then(|()| encoder.finish())
            }
            Self::Brotli => {
                let mut encoded = Vec::new();
                {
                    let mut encoder = brotli::CompressorWriter::new(&mut encoded, 4096, 5, 22);
                    let _ = encoder.write_all(body);
                }
                Ok(encoded)
            }
            Self::Zstd => zstd::encode_all(body, 3),
        };
        // Writing into a Vec does not fail.
        written.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, value.parse().unwrap());
        headers
    }

    #[test]
    fn every_coding_comes_back_to_what_went_in() {
        let text = "the same words again and again ".repeat(100);
        for coding in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
            let encoded = coding.encode(text.as_bytes());
            assert!(encoded.len() < text.len(), "{coding:?}");
            assert_eq!(coding.decode(&encoded, 1 << 20).unwrap(), text.as_bytes());
        }
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let bomb = Coding::Gzip.encode(&vec![0; 10 << 20]);
        assert!(bomb.len() < 20_000);
        assert!(matches!(
            Coding::Gzip.decode(&bomb, 1 << 20),
            Err(CodingError::TooLarge(_))
        ));
        assert!(matches!(
            Coding::Gzip.decode(b"not gzip", 100),
            Err(CodingError::Invalid(..))
        ));
    }

    #[test]
    fn the_client_preference_wins_and_q0_refuses() {
        assert_eq!(
            Coding::preferred(&accept("gzip, deflate, br, zstd")),
            Coding::Brotli
        );
        assert_eq!(
            Coding::preferred(&accept("gzip;q=1, br;q=0.5")),
            Coding::Gzip
        );
        assert_eq!(
            Coding::preferred(&accept("br;q=0, gzip;q=0")),
            Coding::Identity
        );
        assert_eq!(Coding::preferred(&HeaderMap::new()), Coding::Identity);
    }

    #[test]
    fn unknown_or_stacked_codings_are_not_read() {
        let mut headers = HeaderMap::new();
        assert_eq!(Coding::of(&headers), Some(Coding::Identity));
        headers.insert(CONTENT_ENCODING, "gzip".parse().unwrap());
        assert_eq!(Coding::of(&headers), Some(Coding::Gzip));
        headers.insert(CONTENT_ENCODING, "gzip, br".parse().unwrap());
        assert_eq!(Coding::of(&headers), None);
        headers.insert(CONTENT_ENCODING, "compress".parse().unwrap());
        assert_eq!(Coding::of(&headers), None);
    }
}
