//! Refused upgrades, in one wording for every engine.
//!
//! Go's ReverseProxy refuses two kinds of protocol switch, and both HTTP/1
//! engines here (step 03 on hyper, step 10 on its own) refuse them the same
//! way, with the same 502 and the same words, so a client — or a test —
//! cannot tell the engines apart by their refusals.

/// An upgrade the proxy will not carry through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeRefusal {
    /// The client asked for a protocol that cannot be named in printable
    /// ASCII: refused before it reaches anyone.
    #[error("client tried to switch to invalid protocol {0:?}")]
    InvalidProtocol(String),
    /// The backend answered 101 with another protocol than the one asked
    /// for (or none): its bytes would be read as something they are not.
    #[error("backend switched to protocol {got:?} when {requested:?} was requested")]
    Mismatch { requested: String, got: String },
}

impl UpgradeRefusal {
    /// The refusal of `asked`, given as raw bytes.
    pub fn invalid_protocol(asked: &[u8]) -> Self {
        Self::InvalidProtocol(String::from_utf8_lossy(asked).into_owned())
    }

    /// The refusal of a switch to `got` when `requested` was asked, as raw bytes.
    pub fn mismatch(requested: &[u8], got: &[u8]) -> Self {
        Self::Mismatch {
            requested: String::from_utf8_lossy(requested).into_owned(),
            got: String::from_utf8_lossy(got).into_owned(),
        }
    }
}
