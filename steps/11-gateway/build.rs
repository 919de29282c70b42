// Tests that need redis-server, Chromium or ZooKeeper are ignored without
// them (see test_programs).
fn main() {
    test_programs::redis_server();
    test_programs::chromium();
    test_programs::zookeeper();
}
