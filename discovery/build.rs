// The tests that need a ZooKeeper are ignored without one (see test_programs).
fn main() {
    test_programs::zookeeper();
}
