// The browser test is ignored without a Chromium (see test_programs).
fn main() {
    test_programs::chromium();
}
