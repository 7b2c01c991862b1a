//! The server's bounds and refusals over real sockets on 127.0.0.1, through `serve` (the accept
//! loop `main` runs), with toy sessions standing in for the protocol: each test is a finding of the
//! review (issue 22) that the old server failed.

use axum::http::StatusCode;
use cryptonas_model::image::ImageLimits;
use cryptonas_protocol::{ErrorCode, Msg, Output, OutputPolicy, Phase, ProtocolError, Session};
use cryptonas_server::{
    sanitize_for_log, serve, AppError, AppState, HostedModel, Limits, ModelSummary, PlainAnswer,
    PlainPolicy, ServeOptions, ServedSession,
};
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, Message};

/// Echoes frames reversed; `end` finishes; `bad` is a protocol error; `flood` streams 400 frames of
/// 256 KiB; `ready` and `online` move to those phases; `panic` panics (a server bug). Its states accept
/// frames up to 32 KiB, its model's largest message is 64 KiB.
struct Toy {
    outbox: VecDeque<Output>,
    flood: u32,
    phase: Phase,
}

impl Default for Toy {
    fn default() -> Self {
        Toy {
            outbox: VecDeque::from([Output::Frame(b"hello".to_vec())]),
            flood: 0,
            phase: Phase::Offline,
        }
    }
}

impl Session for Toy {
    fn handle(&mut self, frame: &[u8]) -> Result<(), ProtocolError> {
        let reply = |t: &mut Toy, f: Vec<u8>| t.outbox.push_back(Output::Frame(f));
        match frame {
            b"end" => {
                reply(self, b"bye".to_vec());
                self.outbox.push_back(Output::Finished);
            }
            b"bad" => {
                return Err(ProtocolError::Malformed {
                    what: "toy message",
                    reason: "bad frame".into(),
                })
            }
            b"flood" => self.flood = 400,
            b"ready" => {
                self.phase = Phase::Ready;
                reply(self, b"ok".to_vec());
            }
            b"online" => {
                self.phase = Phase::Online;
                reply(self, b"ok".to_vec());
            }
            b"panic" => panic!("toy server bug"),
            f => reply(self, f.iter().rev().copied().collect()),
        }
        Ok(())
    }
    fn poll_output(&mut self) -> Result<Option<Output>, ProtocolError> {
        if let Some(out) = self.outbox.pop_front() {
            return Ok(Some(out));
        }
        if self.flood == 0 {
            return Ok(None);
        }
        self.flood -= 1;
        Ok(Some(Output::Frame(vec![7u8; 256 << 10])))
    }
}

impl ServedSession for Toy {
    fn max_frame_bytes(&self) -> Option<usize> {
        Some(32 << 10)
    }
    fn phase(&self) -> Phase {
        self.phase
    }
}

struct ToyModel {
    memory: u64,
    plain_delay: Duration,
    output: OutputPolicy,
}

impl HostedModel for ToyModel {
    fn summary(&self) -> ModelSummary {
        ModelSummary {
            name: "toy".into(),
            relus: 1,
            accuracy: None,
            input: [3, 32, 32],
            classes: vec!["a".into(), "b".into()],
            description: "test".into(),
            output: self.output,
            reveals: self.output.describe(),
        }
    }
    fn output(&self) -> OutputPolicy {
        self.output
    }
    fn new_session(&self) -> Result<Box<dyn ServedSession>, AppError> {
        Ok(Box::new(Toy::default()))
    }
    fn session_memory(&self) -> u64 {
        self.memory
    }
    fn max_client_frame(&self) -> Option<usize> {
        Some(64 << 10)
    }
    fn classify_plain(&self, image: &[u8], limits: &ImageLimits) -> Result<PlainAnswer, AppError> {
        std::thread::sleep(self.plain_delay);
        cryptonas_model::image::decode_with(image, limits)
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        Ok(PlainAnswer {
            output: OutputPolicy::Logits,
            class: 1,
            ranked: vec![1, 0],
            logits: Some(vec![0.5, 1.5]),
        })
    }
}

struct Server {
    addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

fn small_limits() -> Limits {
    Limits {
        sessions_per_minute: 0,
        max_frame_bytes: 1 << 20,
        write_buffer_bytes: 1 << 20,
        ..Limits::default()
    }
}

async fn start(
    limits: Limits,
    plain: PlainPolicy,
    origins: Vec<String>,
    options: ServeOptions,
) -> Server {
    start_model(
        ToyModel {
            memory: 10 << 20,
            plain_delay: Duration::ZERO,
            output: OutputPolicy::Class,
        },
        limits,
        plain,
        origins,
        options,
    )
    .await
}

async fn start_model(
    model: ToyModel,
    limits: Limits,
    plain: PlainPolicy,
    origins: Vec<String>,
    options: ServeOptions,
) -> Server {
    let state = AppState::with_policy(
        vec![Arc::new(model)],
        limits,
        plain,
        origins,
        std::env::temp_dir(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        serve(listener, state, options, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Server {
        addr,
        stop: Some(stop),
        done,
    }
}

/// One HTTP/1.1 request; returns (status, lower-cased head, body).
async fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let buf = String::from_utf8_lossy(&buf).to_string();
    let status = buf[9..12].parse().unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap();
    (status, head.to_lowercase(), body.to_string())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(addr: &str) -> Result<Ws, tungstenite::Error> {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/api/session/toy")).await?;
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(b"hello".to_vec())
    );
    Ok(ws)
}

/// The HTTP status and body of a refused WebSocket handshake.
fn refusal(r: Result<Ws, tungstenite::Error>) -> (u16, String, Option<String>) {
    match r {
        Err(tungstenite::Error::Http(resp)) => (
            resp.status().as_u16(),
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string(),
            resp.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string()),
        ),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, the session was admitted"),
    }
}

/// Reads until the server's close frame; returns (code, reason).
async fn close_of(ws: &mut Ws, within: Duration) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("no close frame within {within:?}"),
            Ok(Some(Ok(Message::Close(Some(f))))) => {
                return (u16::from(f.code), f.reason.to_string())
            }
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("connection ended without a close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn plaintext_is_off_by_default_class_only_rate_limited_and_bounded() {
    // SRV-1: off by default, with a JSON 404.
    let s = start(
        small_limits(),
        PlainPolicy::default(),
        vec![],
        ServeOptions::default(),
    )
    .await;
    let (status, _, body) = http(&s.addr, "POST", "/api/plain/toy", b"x").await;
    assert_eq!(status, 404);
    assert!(
        body.contains("\"error\":\"plaintext classification is disabled"),
        "{body}"
    );

    let png = {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, 2, 2);
        enc.set_color(png::ColorType::Grayscale);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[0, 1, 2, 3]).unwrap();
        drop(w);
        out
    };
    let on = PlainPolicy {
        enabled: true,
        ..PlainPolicy::default()
    };
    // What the model's output policy reveals (here: the class only), as its private sessions;
    // rate-limited with the sessions, refusals in JSON.
    let limits = Limits {
        sessions_per_minute: 2,
        ..small_limits()
    };
    let s = start(limits.clone(), on.clone(), vec![], ServeOptions::default()).await;
    let (status, _, body) = http(&s.addr, "POST", "/api/plain/toy", &png).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "{\"output\":\"class\",\"class\":1,\"ranked\":[1]}");
    let _ = http(&s.addr, "POST", "/api/plain/toy", &png).await;
    let (status, head, body) = http(&s.addr, "POST", "/api/plain/toy", &png).await;
    assert_eq!(status, 429, "{body}");
    assert!(head.contains("retry-after: 60"), "{head}");
    assert!(body.contains("\"error\":\"rate limit"), "{body}");
    // The plaintext answers spent the address's session budget too.
    assert_eq!(refusal(open(&s.addr).await).0, 429);

    // Logits under a `logits` model; 413 in JSON; an image bomb refused by the image limits.
    let s = start_model(
        ToyModel {
            memory: 10 << 20,
            plain_delay: Duration::ZERO,
            output: OutputPolicy::Logits,
        },
        small_limits(),
        on.clone(),
        vec![],
        ServeOptions::default(),
    )
    .await;
    let (_, _, body) = http(&s.addr, "POST", "/api/plain/toy", &png).await;
    assert_eq!(
        body,
        "{\"output\":\"logits\",\"class\":1,\"ranked\":[1,0],\"logits\":[0.5,1.5]}"
    );
    let (status, _, body) =
        http(&s.addr, "POST", "/api/plain/toy", &vec![0u8; (4 << 20) + 1]).await;
    assert_eq!(status, 413);
    assert!(
        body.contains("\"error\":\"request body too large"),
        "{body}"
    );
    let bomb = {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, 4096, 4096);
        enc.set_color(png::ColorType::Grayscale);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&vec![0u8; 4096 * 4096]).unwrap();
        drop(w);
        out
    };
    assert!(bomb.len() < 100_000, "{} bytes", bomb.len());
    let (status, _, body) = http(&s.addr, "POST", "/api/plain/toy", &bomb).await;
    assert_eq!(status, 400);
    assert!(body.contains("image too large"), "{body}");

    // Bounded concurrency: a second classification while one runs is refused with 503 and
    // Retry-After, and its rate token is given back.
    let s = start_model(
        ToyModel {
            memory: 10 << 20,
            plain_delay: Duration::from_millis(600),
            output: OutputPolicy::Class,
        },
        Limits {
            sessions_per_minute: 2,
            ..small_limits()
        },
        PlainPolicy {
            concurrency: 1,
            ..on
        },
        vec![],
        ServeOptions::default(),
    )
    .await;
    let first = {
        let (addr, png) = (s.addr.clone(), png.clone());
        tokio::spawn(async move { http(&addr, "POST", "/api/plain/toy", &png).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, head, _) = http(&s.addr, "POST", "/api/plain/toy", &png).await;
    assert_eq!(status, 503);
    assert!(head.contains("retry-after: 5"), "{head}");
    assert_eq!(first.await.unwrap().0, 200);
    let (status, _, _) = http(&s.addr, "POST", "/api/plain/toy", &png).await;
    assert_eq!(
        status, 200,
        "the refused attempt was charged to the rate limit"
    );
}

#[tokio::test]
async fn refusals_say_never_busy_or_rate_and_do_not_spend_the_rate_limit() {
    // F9: a budget smaller than one session is "never fits" (507), not "try again" (503).
    let s = start(
        Limits {
            memory_budget: 5 << 20,
            ..small_limits()
        },
        PlainPolicy::default(),
        vec![],
        ServeOptions::default(),
    )
    .await;
    let (status, body, retry) = refusal(open(&s.addr).await);
    assert_eq!(status, 507, "{body}");
    assert!(
        body.contains("\"error\":\"model 'toy' needs 12 MB per session"),
        "{body}"
    );
    assert_eq!(retry, None);

    // F10/F14: busy is 503 with Retry-After, and a refused attempt gives its rate token back.
    let s = start(
        Limits {
            max_sessions: 1,
            sessions_per_minute: 2,
            ..small_limits()
        },
        PlainPolicy::default(),
        vec![],
        ServeOptions::default(),
    )
    .await;
    let mut a = open(&s.addr).await.unwrap();
    for _ in 0..3 {
        let (status, body, retry) = refusal(open(&s.addr).await);
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("\"error\":\"server busy"), "{body}");
        assert_eq!(retry.as_deref(), Some("5"));
    }
    a.send(Message::binary(b"end".to_vec())).await.unwrap();
    while a.next().await.is_some() {}
    let mut admitted = None;
    for _ in 0..50 {
        match open(&s.addr).await {
            Ok(ws) => {
                admitted = Some(ws);
                break;
            }
            Err(tungstenite::Error::Http(r)) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("polite retry refused: {e}"),
        }
    }
    drop(admitted.expect("slot never released"));

    // SRV-3: per-address concurrent-session cap, 429 with a reason.
    let s = start(
        Limits {
            max_sessions_per_address: 2,
            ..small_limits()
        },
        PlainPolicy::default(),
        vec![],
        ServeOptions::default(),
    )
    .await;
    let _a = open(&s.addr).await.unwrap();
    let _b = open(&s.addr).await.unwrap();
    let (status, body, _) = refusal(open(&s.addr).await);
    assert_eq!(status, 429);
    assert!(
        body.contains("this address already runs 2 sessions"),
        "{body}"
    );
}

#[tokio::test]
async fn websocket_origins_are_checked() {
    let s = start(
        small_limits(),
        PlainPolicy::default(),
        vec!["https://demo.example".into()],
        ServeOptions::default(),
    )
    .await;
    let req = |origin: &str| {
        let mut r = tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{}/api/session/toy",
            s.addr
        ))
        .unwrap();
        r.headers_mut().insert("origin", origin.parse().unwrap());
        r
    };
    match tokio_tungstenite::connect_async(req("https://evil.example")).await {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("foreign origin admitted: {other:?}"),
    }
    assert!(
        tokio_tungstenite::connect_async(req("https://demo.example"))
            .await
            .is_ok()
    );
    assert!(
        tokio_tungstenite::connect_async(req(&format!("http://{}", s.addr)))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn control_frames_do_not_count_as_activity() {
    // F3: pings every 100 ms against a 400 ms idle timeout.
    let s = start(
        Limits {
            idle_timeout: Duration::from_millis(400),
            ..small_limits()
        },
        PlainPolicy::default(),
        vec![],
        ServeOptions::default(),
    )
    .await;
    let mut ws = open(&s.addr).await.unwrap();
    let t0 = Instant::now();
    let closed = loop {
        ws.send(Message::Ping(vec![1].into())).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(100), ws.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => {
                break (u16::from(f.code), f.reason.to_string())
            }
            // The protocol's Error frame comes first: the close follows it.
            Ok(Some(Ok(Message::Binary(_)))) => {
                break close_of(&mut ws, Duration::from_secs(5)).await
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(other) => panic!("{other:?}"),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "pings kept the session alive"
        );
    };
    assert_eq!(closed.0, 4008, "{closed:?}");
    assert!(closed.1.contains("timeout: no message"), "{closed:?}");
}

#[tokio::test]
async fn a_client_that_stops_reading_loses_its_slot() {
    // F2: a 300 ms send timeout; the client asks for 100 MB and reads nothing.
    let s = start(
        Limits {
            max_sessions: 1,
            send_timeout: Duration::from_millis(300),
            ..small_limits()
        },
        PlainPolicy::default(),
        vec![],
        ServeOptions::default(),
    )
    .await;
    let mut stalled = open(&s.addr).await.unwrap();
    stalled
        .send(Message::binary(b"flood".to_vec()))
        .await
        .unwrap();
    let t0 = Instant::now();
    loop {
        match open(&s.addr).await {
            Ok(_) => break,
            Err(tungstenite::Error::Http(r)) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "stalled reader kept its slot"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    drop(stalled);
}

#[tokio::test]
async fn phase_deadlines_bound_busy_sessions() {
    // A client that keeps talking (no idle timeout) is still closed at the offline deadline,
    // and the online phase has its own.
    let s = start(
        Limits {
            offline_deadline: Duration::from_millis(500),
            online_deadline: Duration::from_millis(500),
            ..small_limits()
        },
        PlainPolicy::default(),
        vec![],
        ServeOptions::default(),
    )
    .await;
    for online in [false, true] {
        let mut ws = open(&s.addr).await.unwrap();
        if online {
            tokio::time::sleep(Duration::from_millis(300)).await;
            ws.send(Message::binary(b"online".to_vec())).await.unwrap();
            assert_eq!(
                ws.next().await.unwrap().unwrap(),
                Message::binary(b"ok".to_vec())
            );
        }
        let t0 = Instant::now();
        let (code, reason) = loop {
            let _ = ws.send(Message::binary(b"ab".to_vec())).await;
            match tokio::time::timeout(Duration::from_millis(100), ws.next()).await {
                Ok(Some(Ok(Message::Close(Some(f))))) => {
                    break (u16::from(f.code), f.reason.to_string())
                }
                Ok(Some(Ok(_))) | Err(_) => {}
                Ok(other) => panic!("{other:?}"),
            }
            assert!(t0.elapsed() < Duration::from_secs(3), "no deadline");
        };
        assert_eq!(code, 4008);
        let phase = if online { "online" } else { "offline" };
        assert!(
            reason.contains(&format!("the {phase} phase took longer")),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn prepared_sessions_wait_past_the_idle_timeout_then_expire() {
    // A prepared session (offline done, waiting for the user's image) is not idle: it outlives
    // the idle timeout, is pinged so proxies keep it, and is closed at its time to live with the
    // protocol's `Expired` error, freeing its slot.
    let s = start(
        Limits {
            idle_timeout: Duration::from_millis(200),
            prepared_ttl: Duration::from_millis(900),
            keepalive: Duration::from_millis(100),
            max_sessions: 1,
            ..small_limits()
        },
        PlainPolicy::default(),
        vec![],
        ServeOptions::default(),
    )
    .await;
    let mut ws = open(&s.addr).await.unwrap();
    ws.send(Message::binary(b"ready".to_vec())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(b"ok".to_vec())
    );
    let t0 = Instant::now();
    let mut pings = 0;
    let (error, close) = loop {
        match tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(Message::Binary(b)))) => {
                let Ok(Msg::Error { code, message }) = Msg::decode(&b) else {
                    panic!("not an error frame: {b:?}")
                };
                let Some(Ok(Message::Close(Some(f)))) = ws.next().await else {
                    panic!("no close frame after the error")
                };
                break ((code, message), u16::from(f.code));
            }
            other => panic!("{other:?}"),
        }
    };
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(800),
        "expired after {waited:?}"
    );
    assert!(pings >= 3, "{pings} keep-alive pings in {waited:?}");
    assert_eq!(error.0, ErrorCode::Expired);
    assert!(error.1.contains("prepared session expired"), "{}", error.1);
    assert_eq!(close, 4008);
    // The only slot is free again.
    drop(ws);
    open(&s.addr).await.unwrap();
}

#[tokio::test]
async fn close_codes_tell_violation_timeout_and_fault_apart() {
    let s = start(
        Limits {
            idle_timeout: Duration::from_millis(300),
            ..small_limits()
        },
        PlainPolicy::default(),
        vec![],
        ServeOptions::default(),
    )
    .await;
    let cases: [(&[u8], u16, &str); 5] = [
        (b"bad", 1008, "protocol violation: malformed toy message"),
        (&[0u8; 40 << 10], 1009, "at most 32768 bytes are expected"),
        (&[0u8; 100 << 10], 1009, "Message too long: 102400 > 65536"),
        (b"panic", 1011, "server fault"),
        (b"", 4008, "timeout"),
    ];
    for (frame, code, reason) in cases {
        let mut ws = open(&s.addr).await.unwrap();
        if !frame.is_empty() {
            ws.send(Message::binary(frame.to_vec())).await.unwrap();
        }
        let got = close_of(&mut ws, Duration::from_secs(5)).await;
        assert_eq!(got.0, code, "{got:?}");
        assert!(got.1.contains(reason), "{got:?}");
    }
    let mut ws = open(&s.addr).await.unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(close_of(&mut ws, Duration::from_secs(5)).await.0, 1003);
    // The server still serves.
    let mut ws = open(&s.addr).await.unwrap();
    ws.send(Message::binary(b"end".to_vec())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(b"bye".to_vec())
    );
    assert_eq!(close_of(&mut ws, Duration::from_secs(5)).await.0, 1000);
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed_and_capped() {
    // F4: headers must arrive within the timeout, idle keep-alive connections are closed, and
    // connections beyond the cap wait instead of exhausting descriptors.
    let s = start(
        small_limits(),
        PlainPolicy::default(),
        vec![],
        ServeOptions {
            max_connections: 2,
            header_timeout: Duration::from_millis(500),
            ..ServeOptions::default()
        },
    )
    .await;
    let t0 = Instant::now();
    let mut slow = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut idle = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    // Both slots are taken: a third client waits until the server drops one of them.
    let (status, _, _) = http(&s.addr, "GET", "/healthz", b"").await;
    assert_eq!(status, 200);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "served past the cap after {waited:?}"
    );
    let mut buf = [0u8; 64];
    for conn in [&mut slow, &mut idle] {
        let n = tokio::time::timeout(Duration::from_secs(3), conn.read(&mut buf))
            .await
            .expect("slow connection never closed");
        // Closed, possibly after a 408 answer.
        assert!(
            matches!(n, Ok(0) | Err(_)) || buf.starts_with(b"HTTP/1.1 408"),
            "{n:?}"
        );
    }
}

#[tokio::test]
async fn probes_metrics_and_security_headers() {
    let s = start(
        Limits {
            max_sessions: 1,
            ..small_limits()
        },
        PlainPolicy::default(),
        vec![],
        ServeOptions::default(),
    )
    .await;
    let (status, head, _) = http(&s.addr, "GET", "/healthz", b"").await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert_eq!(http(&s.addr, "GET", "/readyz", b"").await.0, 200);
    let mut ws = open(&s.addr).await.unwrap();
    let _ = refusal(open(&s.addr).await);
    ws.send(Message::binary(b"end".to_vec())).await.unwrap();
    while ws.next().await.is_some() {}
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, head, body) = http(&s.addr, "GET", "/metrics", b"").await;
    assert_eq!(status, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    for line in [
        "cryptonas_sessions_started_total 1",
        "cryptonas_sessions_active 0",
        "cryptonas_sessions_ended_total{outcome=\"ok\"} 1",
        "cryptonas_refused_total{reason=\"sessions_busy\"} 1",
        "cryptonas_phase_seconds_count{phase=\"offline\"} 0",
        "cryptonas_memory_admitted_bytes 0",
    ] {
        assert!(body.contains(line), "missing {line} in\n{body}");
    }
}

#[tokio::test]
async fn shutdown_stops_admitting_and_drains_within_the_deadline() {
    let mut s = start(
        small_limits(),
        PlainPolicy::default(),
        vec![],
        ServeOptions {
            drain: Duration::from_millis(800),
            ..ServeOptions::default()
        },
    )
    .await;
    let mut finishing = open(&s.addr).await.unwrap();
    let mut lingering = open(&s.addr).await.unwrap();
    s.stop.take().unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // No new connections; running sessions go on.
    assert!(
        tokio_tungstenite::connect_async(format!("ws://{}/api/session/toy", s.addr))
            .await
            .is_err()
    );
    finishing
        .send(Message::binary(b"end".to_vec()))
        .await
        .unwrap();
    assert_eq!(
        finishing.next().await.unwrap().unwrap(),
        Message::binary(b"bye".to_vec())
    );
    // The one that does not finish is closed at the deadline with 1001, and serve returns.
    let (code, reason) = close_of(&mut lingering, Duration::from_secs(5)).await;
    assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
    tokio::time::timeout(Duration::from_secs(5), &mut s.done)
        .await
        .expect("serve did not return")
        .unwrap();
}

#[test]
fn peer_text_is_escaped_and_truncated_for_logs() {
    // F5: a newline cannot forge a log line; 32 MiB cannot fill the log.
    let forged = "oops\nINFO session finished";
    assert_eq!(
        sanitize_for_log(forged, 100),
        "oops\\nINFO session finished"
    );
    let huge = "x".repeat(32 << 20);
    let logged = sanitize_for_log(&huge, 256);
    assert!(logged.len() < 300, "{}", logged.len());
    assert!(logged.ends_with("(33554432 bytes in all)"));
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client() {
    // Behind nginx every connection comes from 127.0.0.1: per-address limits must use the
    // X-Real-IP the proxy sets, and only from a trusted proxy.
    let limits = Limits {
        max_sessions_per_address: 1,
        ..small_limits()
    };
    let state = |trusted: Vec<std::net::IpAddr>| {
        AppState::with_policy(
            vec![Arc::new(ToyModel {
                memory: 10 << 20,
                plain_delay: Duration::ZERO,
                output: OutputPolicy::Class,
            })],
            limits.clone(),
            PlainPolicy::default(),
            vec![],
            std::env::temp_dir(),
        )
        .with_trusted_proxies(trusted)
    };
    for trusted in [false, true] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let st = state(if trusted {
            vec!["127.0.0.1".parse().unwrap()]
        } else {
            vec![]
        });
        tokio::spawn(serve(
            listener,
            st,
            ServeOptions::default(),
            std::future::pending(),
        ));
        let open_as = |ip: &str| {
            let mut r = tungstenite::client::IntoClientRequest::into_client_request(format!(
                "ws://{addr}/api/session/toy"
            ))
            .unwrap();
            r.headers_mut().insert("x-real-ip", ip.parse().unwrap());
            tokio_tungstenite::connect_async(r)
        };
        let _a = open_as("203.0.113.1").await.unwrap();
        let b = open_as("203.0.113.2").await;
        assert_eq!(b.is_ok(), trusted, "trusted = {trusted}");
    }
}

/// At start-up a model whose one session cannot fit the per-session memory limit is refused
/// (logged with its estimate and the limit), the others are served.
#[test]
fn models_whose_session_cannot_fit_are_refused_at_load() {
    let dir = std::env::temp_dir().join(format!(
        "cryptonas-too-large-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, weights, small, _) = cryptonas_protocol::testing::tiny_model(1, 8, 31);
    std::fs::write(dir.join("small.json"), &json).unwrap();
    std::fs::write(dir.join("small.safetensors"), &weights).unwrap();
    let (json, weights, big, _) = cryptonas_protocol::testing::tiny_model(4, 32, 31);
    std::fs::write(dir.join("big.json"), &json).unwrap();
    std::fs::write(dir.join("big.safetensors"), &weights).unwrap();
    let (need_small, need_big) = (small.session_memory_bytes(), big.session_memory_bytes());
    assert!(need_small < need_big);
    let limit = (need_small + need_big) / 2;
    let models = cryptonas_server::load_models(&dir, 0, &Default::default(), limit).unwrap();
    let names: Vec<String> = models.iter().map(|m| m.summary().name).collect();
    assert_eq!(names, vec!["small".to_string()]);
    assert_eq!(
        cryptonas_server::load_models(&dir, 0, &Default::default(), need_big)
            .unwrap()
            .len(),
        2
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
