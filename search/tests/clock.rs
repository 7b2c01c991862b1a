//! The CPU clock on a live process. In its own test binary: process CPU time counts every
//! thread, and the unit tests run in parallel threads of one process.

use cryptonas_search::clock::{Clock, Stopwatch};

#[test]
fn cpu_clock_counts_work_not_sleep() {
    if !std::path::Path::new("/proc/self/stat").exists() {
        // Not Linux: the CPU clock is refused at start instead of measuring wrong.
        assert!(Stopwatch::start(Clock::Cpu).is_err());
        return;
    }
    let w = Stopwatch::start(Clock::Cpu).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let slept = w.elapsed();
    assert!(slept < 0.2, "sleeping used {slept} CPU s");
    // Spin until 0.3 s of CPU time or 20 s of wall time (a loaded test machine).
    let mut x = 0u64;
    while w.elapsed() < slept + 0.3 && w.wall() < 20.0 {
        for i in 0..100_000u64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
        }
    }
    std::hint::black_box(x);
    assert!(w.elapsed() >= slept + 0.3, "CPU time did not advance");
    assert!(
        w.wall() >= w.elapsed() - 0.05,
        "one thread: CPU time ≤ wall time"
    );
    let wall = Stopwatch::start(Clock::Wall).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(wall.elapsed() >= 0.05);
}
