// Tests that need redis-server are ignored without it (see test_programs).
fn main() {
    test_programs::redis_server();
}
