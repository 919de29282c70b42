// NOTES transcripts that need redis-server or ZooKeeper run only where they
// are (or where CI requires them); see test_programs.
fn main() {
    test_programs::redis_server();
    test_programs::zookeeper();
}
