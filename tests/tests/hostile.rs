//! Hostile clients against the real server (`serve`, the accept loop `main` runs, with a real
//! model) on 127.0.0.1: garbage, truncated, out-of-order and oversized frames, a silent client, a
//! slowloris, many sessions from one address, image bombs and pool drains. Every attack must end
//! with a specific refusal or close code and free what it held; afterwards a normal session still
//! completes bit-exact. Bounded: short timeouts, well under a minute.

use cryptonas_client::{classify, NetworkProfile};
use cryptonas_protocol::{
    testing::tiny_model, ClientInput, ErrorCode, Msg, ServerModel, PROTOCOL_VERSION,
};
use cryptonas_server::{
    serve, AppState, HostedModel, Limits, PlainPolicy, ProtocolModel, ServeOptions,
};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, Message};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const CAT: &[u8] = include_bytes!("../../www/samples/cat.jpg");

struct Target {
    addr: String,
    hosted: Arc<ProtocolModel>,
    model: Arc<ServerModel>,
    images: Vec<Vec<f32>>,
}

async fn start() -> Target {
    let (_, _, model, images) = tiny_model(1, 8, 21);
    // Served as a public deployment should be: clients learn the class only.
    let mut model = Arc::into_inner(model).unwrap();
    model
        .set_output(cryptonas_protocol::OutputPolicy::Class)
        .unwrap();
    let model = Arc::new(model);
    let hosted = Arc::new(ProtocolModel::with_pool(model.clone(), 1));
    for _ in 0..600 {
        if hosted.pooled() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hosted.pooled(), 1, "pool never filled");
    let limits = Limits {
        max_sessions: 8,
        max_sessions_per_address: 4,
        sessions_per_minute: 0,
        idle_timeout: Duration::from_millis(800),
        send_timeout: Duration::from_secs(2),
        offline_deadline: Duration::from_secs(20),
        online_deadline: Duration::from_secs(20),
        ..Limits::default()
    };
    let plain = PlainPolicy {
        enabled: true,
        ..PlainPolicy::default()
    };
    let state = AppState::with_policy(
        vec![hosted.clone() as Arc<dyn HostedModel>],
        limits,
        plain,
        vec![],
        std::env::temp_dir(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let options = ServeOptions {
        max_connections: 64,
        header_timeout: Duration::from_millis(500),
        drain: Duration::from_secs(1),
    };
    tokio::spawn(async move {
        serve(listener, state, options, std::future::pending())
            .await
            .unwrap();
    });
    Target {
        addr,
        hosted,
        model,
        images,
    }
}

async fn connect(addr: &str) -> Result<Ws, tungstenite::Error> {
    tokio_tungstenite::connect_async(format!("ws://{addr}/api/session/tiny"))
        .await
        .map(|(ws, _)| ws)
}

fn hello() -> Vec<u8> {
    Msg::ClientHello {
        version: PROTOCOL_VERSION,
    }
    .encode()
}

/// Sends `frames` and returns the server's close (code, reason), skipping its data frames.
async fn close_after(addr: &str, frames: &[Vec<u8>]) -> (u16, String) {
    let mut ws = connect(addr).await.unwrap();
    for f in frames {
        if ws.send(Message::binary(f.clone())).await.is_err() {
            break;
        }
    }
    close_of(&mut ws).await
}

async fn close_of(ws: &mut Ws) -> (u16, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Err(_) => panic!("no close within 10 s"),
            Ok(Some(Ok(Message::Close(Some(f))))) => {
                return (u16::from(f.code), f.reason.to_string())
            }
            Ok(Some(Ok(_))) => continue,
            Ok(other) => return (0, format!("{other:?}")),
        }
    }
}

async fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let buf = String::from_utf8_lossy(&buf).to_string();
    let status = buf[9..12].parse().unwrap();
    (status, buf.split_once("\r\n\r\n").unwrap().1.to_string())
}

async fn metric(addr: &str, name: &str) -> u64 {
    let (_, body) = http(addr, "GET", "/metrics", b"").await;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
}

/// The cat JPEG with its frame header rewritten to declare `w × h`.
fn jpeg_declaring(w: u16, h: u16) -> Vec<u8> {
    let mut j = CAT.to_vec();
    let sof = j.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    j[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    j[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    j
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_are_refused_and_a_normal_session_still_completes() {
    let started = Instant::now();
    let t = start().await;
    let addr = t.addr.as_str();

    // Connections that open and leave, or whose first message is refused, cost the pool
    // nothing (F8): material is taken at the first message and given back if it is refused.
    for _ in 0..5 {
        drop(connect(addr).await.unwrap());
        let (code, _) = close_after(addr, &[vec![0x55; 10]]).await;
        assert_eq!(code, 1008);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(t.hosted.pool_spent(), 0);
    // A session whose hello was answered has used it (its session id was sent).
    let (code, _) = close_after(addr, &[hello(), hello()]).await;
    assert_eq!(code, 1008);
    assert_eq!(t.hosted.pool_spent(), 1);

    // Garbage, truncated, unknown, out-of-order, replayed: 1008 with a specific reason.
    let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (vec![vec![0x55; 10]], "unknown tag"),
        (vec![vec![]], "malformed"),
        (vec![hello()[..2].to_vec()], "malformed"),
        (
            vec![Msg::ClientInput(vec![0; 8]).encode()],
            "unexpected ClientInput",
        ),
        (vec![hello(), hello()], "unexpected ClientHello"),
        (
            vec![hello(), Msg::ClientHeKey(vec![1, 2, 3]).encode()],
            "malformed HE message: ",
        ),
        (
            vec![
                hello(),
                Msg::Error {
                    code: ErrorCode::Refused,
                    message: "x\ny".repeat(1000),
                }
                .encode(),
            ],
            "peer error",
        ),
    ];
    for (frames, want) in &cases {
        let (code, reason) = close_after(addr, frames).await;
        assert_eq!(code, 1008, "{want}: {reason}");
        assert!(reason.contains(want), "{want}: {reason}");
        assert!(!reason.contains("message message"), "{reason}");
    }

    // Oversized for the state (a hello is a few bytes) and for the model (WebSocket layer).
    let (code, reason) = close_after(addr, &[vec![0x01; 64 << 10]]).await;
    assert_eq!(code, 1009, "{reason}");
    assert!(
        reason.contains("where at most 4096 bytes are expected"),
        "{reason}"
    );
    let biggest = t.model.max_client_frame_bytes();
    let (code, reason) = close_after(addr, &[vec![0x01; biggest + 1]]).await;
    assert_eq!(code, 1009, "{reason}");

    // A silent client is closed at the idle timeout with 4008.
    let t0 = Instant::now();
    let mut silent = connect(addr).await.unwrap();
    let (code, reason) = close_of(&mut silent).await;
    assert_eq!(code, 4008, "{reason}");
    assert!(t0.elapsed() < Duration::from_secs(3));

    // A stalled reader: it sends its hello and never reads; pings keep nothing alive.
    let mut stalled = connect(addr).await.unwrap();
    stalled.send(Message::binary(hello())).await.unwrap();
    for _ in 0..5 {
        let _ = stalled.send(Message::Ping(vec![0].into())).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (code, _) = close_of(&mut stalled).await;
    assert_eq!(code, 4008);

    // Slowloris: half a request line is cut off at the header timeout.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /api/session/tiny HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(3), slow.read(&mut buf))
        .await
        .expect("slowloris kept its connection");
    assert!(matches!(n, Ok(0) | Err(_)) || buf.starts_with(b"HTTP/1.1 408"));

    // Many sessions from one address: the per-address cap answers 429, nothing is held after.
    let mut held = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..12 {
        match connect(addr).await {
            Ok(ws) => held.push(ws),
            Err(tungstenite::Error::Http(r)) => refused.push(r.status().as_u16()),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(held.len(), 4);
    assert!(refused.iter().all(|&s| s == 429), "{refused:?}");
    drop(held);

    // Image bombs on the plaintext endpoint: refused from the header, quickly.
    let t0 = Instant::now();
    for bomb in [jpeg_declaring(8192, 8192), jpeg_declaring(4000, 4000)] {
        let (status, body) = http(addr, "POST", "/api/plain/tiny", &bomb).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("image too large"), "{body}");
    }
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let (status, body) = http(addr, "POST", "/api/plain/tiny", CAT).await;
    assert_eq!(status, 200, "{body}");
    // The plaintext endpoint reveals what a session of the model reveals: the class only.
    assert!(
        body.contains("\"output\":\"class\"") && !body.contains("logits"),
        "{body}"
    );

    // Everything was freed; a normal session completes bit-exact (and uses the pooled material).
    for _ in 0..100 {
        if metric(addr, "cryptonas_sessions_active").await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(addr, "cryptonas_sessions_active").await, 0);
    let r = classify(
        &format!("http://{addr}"),
        "tiny",
        ClientInput::Normalised(t.images[0].clone()),
        NetworkProfile::LOOPBACK,
    )
    .await
    .unwrap();
    let logits = t.model.fixed().forward(&r.outcome.input_ring).unwrap();
    assert_eq!(
        r.outcome.ranked,
        cryptonas_model::rank_logits(&logits, t.model.plan().k, 1)
    );
    assert!(r.outcome.logits_ring.is_empty());
    assert_eq!(
        metric(addr, "cryptonas_sessions_ended_total{outcome=\"ok\"}").await,
        1
    );
    assert!(metric(addr, "cryptonas_refused_total{reason=\"address_busy\"}").await >= 8);
    eprintln!("hostile suite: {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(60));
}
