//! One module per NOTES.md chapter.

pub mod ch00_real_servers;
