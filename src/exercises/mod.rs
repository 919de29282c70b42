//! The exercises: what each chapter leaves for the learner to build.
//!
//! Every exercise is a function (or a type) in `src/exercises/mine/chNN.rs`,
//! started off with a first attempt that is wrong in the way beginners'
//! code usually is, and a module of `tests/exercise_chNN.rs`, named after
//! it, that says when it is right. NOTES gives each exercise at the end of
//! its chapter, with a hint and the command that runs its tests against
//! your code:
//!
//! ```sh
//! cargo test --features mine --test exercise_ch02 join_paths
//! ```
//!
//! Without `--features mine` the same tests run against the workbench's
//! own answers ([`reference`], mostly the chapters' own code), which is
//! how `cargo test --workspace` and CI prove that every exercise can be
//! done and that its tests still mean what they say.
//!
//! Left out on purpose: exercises that need a whole step running; each one
//! here is a piece of a step, so its tests run in milliseconds (chapter 5's
//! serve one middleware on a socket).

pub mod mine;
pub mod reference;

/// The answers the tests check: yours with `--features mine`, else the
/// workbench's.
#[cfg(feature = "mine")]
pub use mine as answers;
#[cfg(not(feature = "mine"))]
pub use reference as answers;
