//! One module per NOTES.md chapter.

pub mod ch00_real_servers;
pub mod ch01_forward_proxy;
pub mod ch02_minimal_reverse_proxy;
pub mod ch03_reverse_proxy;
pub mod ch04_load_balance;
pub mod ch05_middleware;
pub mod ch06_websocket;
pub mod ch07_https;
pub mod ch08_tcp_proxy;
pub mod ch09_cache;
pub mod ch10_fast_path;
pub mod ch11_gateway;
