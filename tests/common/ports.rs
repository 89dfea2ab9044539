//! Ports for servers that are stopped and started again on the same address (replicas in a
//! rolling restart): shared by the tests and the benchmarks.

/// A free port below the kernel's ephemeral range (32768 and up on Linux), so that no outgoing
/// connection of another process takes it as its source port while a replica using it is
/// restarted.
pub fn steady_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 400) as u16 * 30;
    loop {
        let candidate = base + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 12_000;
        let candidate = 20_000 + (candidate - 20_000) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
            return candidate;
        }
    }
}
