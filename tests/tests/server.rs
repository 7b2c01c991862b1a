//! Private inference over the real axum server on 127.0.0.1: bit-exact results, concurrency, and
//! sessions that fail (disconnects, truncated or wrong frames, unknown models, replays) without
//! harming the others.

use cryptonas_client::{classify, is_expired, prepare, NetworkProfile};
use cryptonas_protocol::{testing::tiny_model, ClientInput, Msg, ServerModel, PROTOCOL_VERSION};
use cryptonas_server::{app, AppState, HostedModel, Limits, ProtocolModel};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Message;

async fn serve(model: Arc<ServerModel>) -> String {
    serve_hosted(Arc::new(ProtocolModel::new(model))).await
}

async fn serve_hosted(hosted: Arc<dyn HostedModel>) -> String {
    serve_with(
        hosted,
        Limits {
            sessions_per_minute: 0,
            ..Limits::default()
        },
    )
    .await
}

async fn serve_with(hosted: Arc<dyn HostedModel>, limits: Limits) -> String {
    let state = AppState::new(vec![hosted], limits, std::env::temp_dir());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
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
        .filter(|s| s.garbled())
        .map(|s| 16 * u64::from(s.k) * (s.instances() * s.window()) as u64)
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
