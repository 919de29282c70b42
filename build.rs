// NOTES transcripts that need redis-server run only where it is (or where
// CI requires it); see test_programs.
fn main() {
    test_programs::redis_server();
}
