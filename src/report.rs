//! Where the tour writes: a thin layer over stdout that keeps headings and
//! indentation consistent between chapters.

use std::io::Write;

/// Formats the tour's output; holds any `Write` (stdout, or a buffer in tests).
pub struct Report {
    out: Box<dyn Write + Send>,
}

impl Report {
    pub fn new(out: impl Write + Send + 'static) -> Self {
        Self { out: Box::new(out) }
    }

    fn write(&mut self, text: &str) {
        // A closed stdout (e.g. `cargo run | head`) must not abort the tour
        // with a panic; the lines simply go nowhere.
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    pub fn title(&mut self, text: &str) {
        self.write(text);
        self.write(&"=".repeat(text.chars().count()));
    }

    pub fn chapter(&mut self, number: u32, text: &str) {
        let heading = format!("Chapter {number} · {text}");
        self.blank();
        self.write(&heading);
        self.write(&"-".repeat(heading.chars().count()));
    }

    pub fn line(&mut self, text: impl AsRef<str>) {
        self.write(text.as_ref());
    }

    /// Lines indented under the previous one (e.g. a response body).
    pub fn indented(&mut self, text: impl AsRef<str>) {
        for line in text.as_ref().lines() {
            self.write(&format!("    {line}"));
        }
    }

    pub fn blank(&mut self) {
        self.write("");
    }
}
