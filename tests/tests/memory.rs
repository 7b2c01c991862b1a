//! Memory per session stays bounded: the process's peak resident set (VmHWM, a measured
//! high-water mark) after many sequential sessions is no larger than after the first few, and below
//! a fixed bound for the model size. Its own test binary, so no other test shares the process.

use cryptonas_crypto::Csprng;
use cryptonas_protocol::{
    run_local, testing::tiny_model, ClientInput, ClientSession, ServerSession,
};

fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn session_memory_is_bounded_and_released() {
    let (_, _, model, images) = tiny_model(1, 32, 21);
    let run = |x: &Vec<f32>| {
        let mut server = ServerSession::new(model.clone(), Csprng::from_entropy().unwrap());
        let mut client = ClientSession::new(
            ClientInput::Normalised(x.clone()),
            Csprng::from_entropy().unwrap(),
        );
        run_local(&mut client, &mut server).unwrap();
    };
    for x in images.iter().take(2) {
        run(x);
    }
    let after_two = peak_rss_kb();
    for x in images.iter().skip(2).take(6) {
        run(x);
    }
    let after_eight = peak_rss_kb();
    // 6,144 ReLUs: tables 6144 × 93 × 32 B ≈ 18 MB live on each side at most.
    assert!(after_eight < 400_000, "peak RSS {after_eight} kB");
    assert!(
        after_eight <= after_two + after_two / 4,
        "peak RSS grew from {after_two} kB to {after_eight} kB over 6 more sessions"
    );
    eprintln!("peak RSS after 2 sessions {after_two} kB, after 8 {after_eight} kB");
}
