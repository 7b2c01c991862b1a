//! Private inference over the real axum server on 127.0.0.1: bit-exact results, concurrency, and
//! sessions that fail (disconnects, truncated or wrong frames, unknown models, replays) without
//! harming the others.

use cryptonas_client::{classify, is_expired, prepare, NetworkProfile};
use cryptonas_protocol::{testing::tiny_model, ClientInput, Msg, ServerModel, PROTOCOL_VERSION};
use cryptonas_server::{AppState, Limits, ProtocolModel};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{serve_hosted, serve_state, serve_with};

async fn serve(model: Arc<ServerModel>) -> String {
    serve_hosted(Arc::new(ProtocolModel::new(model))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_inference_over_the_server_is_bit_exact() {
    let (_, _, model, images) = tiny_model(2, 8, 11);
    let url = serve(model.clone()).await;
    for x in images.iter().take(20) {
        let r = classify(
            &url,
            "tiny",
            ClientInput::Normalised(x.clone()),
            NetworkProfile::LOOPBACK,
        )
        .await
        .unwrap();
        let want = model.fixed().forward(&r.outcome.input_ring).unwrap();
        assert_eq!(r.outcome.logits_ring, want);
        assert_eq!(r.traffic.online_rounds as usize, model.plan().stages.len());
        // Online traffic per ReLU: the server's labels (k × 16 B) plus small masked shares.
        let per_relu = r.traffic.online_down as f64 / r.relus as f64;
        assert!(per_relu <= 520.0, "{per_relu} B/ReLU online down");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_sessions_classify_later_and_expire_clearly() {
    let (_, _, model, images) = tiny_model(2, 8, 15);
    let limits = Limits {
        sessions_per_minute: 0,
        prepared_ttl: std::time::Duration::from_secs(2),
        ..Limits::default()
    };
    let url = serve_with(Arc::new(ProtocolModel::new(model.clone())), limits).await;
    // Prepared, then classified after a wait longer than the idle timeout would matter for.
    let mut prepared = prepare(&url, "tiny", NetworkProfile::LOOPBACK)
        .await
        .unwrap();
    assert!(prepared.offline_seconds() > 0.0);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = prepared
        .classify(ClientInput::Normalised(images[0].clone()))
        .await
        .unwrap();
    assert_eq!(
        r.outcome.logits_ring,
        model.fixed().forward(&r.outcome.input_ring).unwrap()
    );
    // One image per session.
    let again = prepared.classify(ClientInput::Normalised(images[1].clone()));
    assert!(again.await.is_err());
    // A bad image is refused before anything is sent, and the session stays prepared.
    let mut prepared = prepare(&url, "tiny", NetworkProfile::LOOPBACK)
        .await
        .unwrap();
    let err = prepared
        .classify(ClientInput::Normalised(vec![0.0; 5]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot use this image"), "{err}");
    let r = prepared
        .classify(ClientInput::Normalised(images[2].clone()))
        .await
        .unwrap();
    assert_eq!(
        r.outcome.logits_ring,
        model.fixed().forward(&r.outcome.input_ring).unwrap()
    );
    // Past the server's time to live: the server's own reason, recognisable.
    let mut prepared = prepare(&url, "tiny", NetworkProfile::LOOPBACK)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let err = prepared
        .classify(ClientInput::Normalised(images[1].clone()))
        .await
        .unwrap_err();
    assert!(is_expired(&err), "{err:#}");
    assert!(err.to_string().contains("expired"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_offline_material_is_used_refilled_and_bit_exact() {
    let (_, _, model, images) = tiny_model(2, 8, 14);
    let hosted = Arc::new(ProtocolModel::with_pool(model.clone(), 2));
    let full = |want: usize| {
        let hosted = hosted.clone();
        async move {
            for _ in 0..600 {
                if hosted.pooled() == want {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            false
        }
    };
    assert!(full(2).await, "pool never filled");
    let url = serve_hosted(hosted.clone()).await;
    let mut down = Vec::new();
    for x in images.iter().take(3) {
        let r = classify(
            &url,
            "tiny",
            ClientInput::Normalised(x.clone()),
            NetworkProfile::LOOPBACK,
        )
        .await
        .unwrap();
        assert_eq!(
            r.outcome.logits_ring,
            model.fixed().forward(&r.outcome.input_ring).unwrap()
        );
        down.push(r.traffic.offline_down);
    }
    // The first session found material ready: it carries the label corrections on top of what
    // a session garbling on demand receives.
    let plain = serve(model.clone()).await;
    let r = classify(
        &plain,
        "tiny",
        ClientInput::Normalised(images[0].clone()),
        NetworkProfile::LOOPBACK,
    )
    .await
    .unwrap();
    // 16 B per share bit: k_l bits per share word a garbled layer reads (one per ReLU).
    let corrections: u64 = model
        .plan()
        .stages
        .iter()
        .map(|s| 16 * u64::from(s.k) * s.share_words() as u64)
        .sum();
    assert_eq!(down[0] - r.traffic.offline_down, corrections, "{down:?}");
    assert!(full(2).await, "pool not refilled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_sessions_are_all_correct() {
    let (_, _, model, images) = tiny_model(1, 8, 12);
    let url = serve(model.clone()).await;
    let tasks: Vec<_> = images
        .iter()
        .take(32)
        .cloned()
        .map(|x| {
            let url = url.clone();
            tokio::spawn(async move {
                classify(
                    &url,
                    "tiny",
                    ClientInput::Normalised(x),
                    NetworkProfile::LOOPBACK,
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        assert_eq!(
            r.outcome.logits_ring,
            model.fixed().forward(&r.outcome.input_ring).unwrap()
        );
    }
}

/// Opens a raw session and returns the socket after the server's plan.
async fn open(
    url: &str,
    model: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    String,
> {
    let ws = url.replacen("http://", "ws://", 1);
    let (mut s, _) = tokio_tungstenite::connect_async(format!("{ws}/api/session/{model}"))
        .await
        .map_err(|e| e.to_string())?;
    s.send(Message::binary(
        Msg::ClientHello {
            version: PROTOCOL_VERSION,
        }
        .encode(),
    ))
    .await
    .unwrap();
    match s.next().await {
        Some(Ok(Message::Binary(b))) => {
            assert!(matches!(Msg::decode(&b), Ok(Msg::ServerPlan { .. })))
        }
        other => panic!("expected the plan, got {other:?}"),
    }
    Ok(s)
}

async fn close_reason<S>(s: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match s.next().await {
            Some(Ok(Message::Close(Some(f)))) => return f.reason.to_string(),
            Some(Ok(Message::Binary(_))) => continue,
            other => return format!("{other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_sessions_end_with_clear_errors_while_others_complete() {
    let (_, _, model, images) = tiny_model(1, 8, 13);
    let url = serve(model.clone()).await;
    // A good session runs alongside every broken one.
    let good = {
        let url = url.clone();
        let x = images[0].clone();
        tokio::spawn(async move {
            classify(
                &url,
                "tiny",
                ClientInput::Normalised(x),
                NetworkProfile::LAN,
            )
            .await
        })
    };
    // Unknown model: refused before the upgrade.
    let err = open(&url, "nope").await.unwrap_err();
    assert!(err.contains("404"), "{err}");
    // Disconnect mid-protocol.
    let s = open(&url, "tiny").await.unwrap();
    drop(s);
    // Truncated frame (an HE key cut short).
    let mut s = open(&url, "tiny").await.unwrap();
    s.send(Message::binary(vec![0x02, 1, 2, 3])).await.unwrap();
    let why = close_reason(&mut s).await;
    assert!(why.contains("malformed"), "{why}");
    // A frame of the wrong type at this point (online input during the offline phase).
    let mut s = open(&url, "tiny").await.unwrap();
    s.send(Message::binary(Msg::ClientInput(vec![0; 8]).encode()))
        .await
        .unwrap();
    let why = close_reason(&mut s).await;
    assert!(why.contains("unexpected ClientInput"), "{why}");
    // A replayed message.
    let mut s = open(&url, "tiny").await.unwrap();
    s.send(Message::binary(
        Msg::ClientHello {
            version: PROTOCOL_VERSION,
        }
        .encode(),
    ))
    .await
    .unwrap();
    let why = close_reason(&mut s).await;
    assert!(why.contains("unexpected ClientHello"), "{why}");
    // Garbage tag.
    let mut s = open(&url, "tiny").await.unwrap();
    s.send(Message::binary(vec![0x55; 10])).await.unwrap();
    let why = close_reason(&mut s).await;
    assert!(why.contains("unknown tag"), "{why}");

    let r = good.await.unwrap().unwrap();
    assert_eq!(
        r.outcome.logits_ring,
        model.fixed().forward(&r.outcome.input_ring).unwrap()
    );
    // The server still serves new sessions.
    let r = classify(
        &url,
        "tiny",
        ClientInput::Normalised(images[1].clone()),
        NetworkProfile::LOOPBACK,
    )
    .await
    .unwrap();
    assert_eq!(
        r.outcome.logits_ring,
        model.fixed().forward(&r.outcome.input_ring).unwrap()
    );
}

/// `--output`: the operator's policy per model governs private sessions, `/api/models` and
/// `/api/plain` alike; under `class` the native client learns the fixed-point arg-max and no
/// logits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_policy_per_model_governs_sessions_listing_and_plaintext() {
    use cryptonas_server::{load_models, OutputPolicies, PlainPolicy};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const CAT: &[u8] = include_bytes!("../../www/samples/cat.jpg");
    let (json, weights, model, _) = tiny_model(2, 8, 11);
    let dir = std::env::temp_dir().join(format!("cryptonas-output-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["tiny", "tiny3"] {
        std::fs::write(dir.join(format!("{name}.json")), &json).unwrap();
        std::fs::write(dir.join(format!("{name}.safetensors")), &weights).unwrap();
    }
    // Configuration errors are refused at start, naming what is wrong.
    for (flags, why) in [
        (vec!["tiny=argmax"], "unknown output policy"),
        (vec!["class", "logits"], "two defaults"),
        (vec!["nosuch=class"], "nosuch"),
        (vec!["tiny=top-11"], "top-11"),
    ] {
        let flags: Vec<String> = flags.into_iter().map(String::from).collect();
        let err = OutputPolicies::parse(&flags)
            .and_then(|o| load_models(&dir, 0, &o, u64::MAX))
            .err()
            .unwrap_or_else(|| panic!("{flags:?} accepted"));
        assert!(err.to_string().contains(why), "{flags:?}: {err}");
    }
    let outputs = OutputPolicies::parse(&["class".into(), "tiny3=top-3".into()]).unwrap();
    let models = load_models(&dir, 0, &outputs, u64::MAX).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let plain = PlainPolicy {
        enabled: true,
        ..PlainPolicy::default()
    };
    let limits = Limits {
        sessions_per_minute: 0,
        ..Limits::default()
    };
    let state = AppState::with_policy(models, limits, plain, vec![], std::env::temp_dir());
    let addr = serve_state(state).await.to_string();
    let http = |method: &'static str, path: String, body: &'static [u8]| {
        let addr = addr.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).await.unwrap();
            s.write_all(body).await.unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf).await;
            let text = String::from_utf8_lossy(&buf).to_string();
            let body = text.split_once("\r\n\r\n").unwrap().1.to_string();
            serde_json::from_str::<serde_json::Value>(&body).unwrap()
        }
    };
    let listed = http("GET", "/api/models".into(), b"").await;
    let policy_of = |name: &str| {
        let m = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap();
        (m["output"].clone(), m["reveals"].clone())
    };
    assert_eq!(policy_of("tiny"), ("class".into(), "class only".into()));
    assert_eq!(policy_of("tiny3"), ("top-3".into(), "top-3 classes".into()));
    let url = format!("http://{addr}");
    let classes = model.plan().classes.len();
    for (name, top) in [("tiny", 1), ("tiny3", 3)] {
        let r = classify(
            &url,
            name,
            ClientInput::ImageBytes(CAT.to_vec()),
            NetworkProfile::LOOPBACK,
        )
        .await
        .unwrap();
        let logits = model.fixed().forward(&r.outcome.input_ring).unwrap();
        let want = cryptonas_model::rank_logits(&logits, model.plan().k, classes);
        assert_eq!(r.outcome.ranked, want[..top], "{name}");
        assert_eq!(r.class, want[0]);
        assert!(r.outcome.logits.is_empty() && r.outcome.logits_ring.is_empty());
        // The plaintext endpoint reveals what the session revealed, and agrees with it.
        let p = http("POST", format!("/api/plain/{name}"), CAT).await;
        assert_eq!(p["output"], if top == 1 { "class" } else { "top-3" });
        assert_eq!(p["class"], want[0]);
        assert_eq!(p["ranked"], serde_json::json!(want[..top]));
        assert!(p.get("logits").is_none(), "{p}");
    }
}
