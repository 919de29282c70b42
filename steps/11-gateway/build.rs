// Tests that need redis-server or Chromium are ignored without them (see
// test_programs).
fn main() {
    test_programs::redis_server();
    test_programs::chromium();
}
