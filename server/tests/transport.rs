//! The transport over a real socket on 127.0.0.1, with a toy session standing in for the protocol:
//! routing, COOP/COEP headers, limits, errors, and sessions that fail without harming others.

use cryptonas_model::image::ImageLimits;
use cryptonas_protocol::{ErrorCode, Msg, Output, OutputPolicy, ProtocolError, Session};
use cryptonas_server::{
    app, AppError, AppState, HostedModel, Limits, ModelSummary, PlainAnswer, ServedSession,
};
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Says hello, then answers each frame with its bytes reversed; `b"end"` finishes after a bye;
/// `b"bad"` is a protocol error; `b"stream"` makes it stream three frames, produced one per poll.
struct Reverse {
    outbox: VecDeque<Output>,
    streaming: u8,
}

impl ServedSession for Reverse {}

impl Default for Reverse {
    fn default() -> Self {
        Reverse {
            outbox: VecDeque::from([Output::Frame(b"hello".to_vec())]),
            streaming: 0,
        }
    }
}

impl Session for Reverse {
    fn handle(&mut self, frame: &[u8]) -> Result<(), ProtocolError> {
        match frame {
            b"end" => {
                self.outbox.push_back(Output::Frame(b"bye".to_vec()));
                self.outbox.push_back(Output::Finished);
            }
            b"bad" => {
                return Err(ProtocolError::Malformed {
                    what: "toy message",
                    reason: "bad frame".into(),
                })
            }
            b"stream" => self.streaming = 3,
            f => self
                .outbox
                .push_back(Output::Frame(f.iter().rev().copied().collect())),
        }
        Ok(())
    }
    fn poll_output(&mut self) -> Result<Option<Output>, ProtocolError> {
        if let Some(out) = self.outbox.pop_front() {
            return Ok(Some(out));
        }
        if self.streaming == 0 {
            return Ok(None);
        }
        self.streaming -= 1;
        Ok(Some(Output::Frame(vec![b'0' + self.streaming])))
    }
}

/// A toy model; `memory` is what each of its sessions claims to need.
struct Toy {
    name: &'static str,
    memory: u64,
}

const TOY: Toy = Toy {
    name: "toy",
    memory: 100 << 20,
};

impl HostedModel for Toy {
    fn summary(&self) -> ModelSummary {
        ModelSummary {
            name: self.name.into(),
            relus: 1,
            accuracy: None,
            input: [3, 32, 32],
            classes: vec!["a".into()],
            description: "test".into(),
            output: OutputPolicy::Logits,
            reveals: "logits".into(),
        }
    }
    fn output(&self) -> OutputPolicy {
        OutputPolicy::Logits
    }
    fn new_session(&self) -> Result<Box<dyn ServedSession>, AppError> {
        Ok(Box::new(Reverse::default()))
    }
    fn session_memory(&self) -> u64 {
        self.memory
    }
    fn classify_plain(&self, _image: &[u8], _: &ImageLimits) -> Result<PlainAnswer, AppError> {
        Err(AppError::BadRequest("toy model".into()))
    }
}

/// The protocol's `Error` frame: its code and reason.
fn error_frame(m: Message) -> (ErrorCode, String) {
    match m {
        Message::Binary(f) => match Msg::decode(&f).unwrap() {
            Msg::Error { code, message } => (code, message),
            other => panic!("expected an Error frame, got {other:?}"),
        },
        other => panic!("expected an Error frame, got {other:?}"),
    }
}

async fn serve(limits: Limits) -> String {
    let www = std::env::temp_dir();
    let big = Toy {
        name: "big",
        memory: 3 << 30,
    };
    let state = AppState::new(vec![Arc::new(TOY), Arc::new(big)], limits, www);
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
    format!("127.0.0.1:{}", addr.port())
}

async fn http_get(addr: &str, path: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf[9..12].parse().unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap();
    (status, head.to_lowercase(), body.to_string())
}

#[tokio::test]
async fn api_routes_and_isolation_headers() {
    let addr = serve(Limits::default()).await;
    let (status, head, body) = http_get(&addr, "/api/models").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"name\":\"toy\""), "{body}");
    assert!(head.contains("cross-origin-opener-policy: same-origin"));
    assert!(head.contains("cross-origin-embedder-policy: require-corp"));
    let (status, _, body) = http_get(&addr, "/api/session/nope").await;
    assert_eq!(status, 404);
    assert!(body.contains("unknown model 'nope'"), "{body}");
}

#[tokio::test]
async fn session_runs_and_bad_session_does_not_harm_others() {
    let addr = serve(Limits::default()).await;
    let url = format!("ws://{addr}/api/session/toy");
    let (mut good, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut bad, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(
        good.next().await.unwrap().unwrap(),
        Message::binary(b"hello".to_vec())
    );
    assert_eq!(
        bad.next().await.unwrap().unwrap(),
        Message::binary(b"hello".to_vec())
    );
    bad.send(Message::binary(b"bad".to_vec())).await.unwrap();
    // The protocol's one error channel, then the close.
    match bad.next().await.unwrap().unwrap() {
        Message::Binary(f) => match Msg::decode(&f).unwrap() {
            Msg::Error { code, message } => {
                assert_eq!(code, ErrorCode::Malformed);
                assert!(message.contains("malformed toy message"), "{message}");
            }
            other => panic!("expected an Error frame, got {other:?}"),
        },
        other => panic!("expected an Error frame, got {other:?}"),
    }
    match bad.next().await.unwrap().unwrap() {
        Message::Close(Some(frame)) => assert!(frame.reason.contains("malformed toy message")),
        other => panic!("expected a close frame, got {other:?}"),
    }
    good.send(Message::binary(b"abc".to_vec())).await.unwrap();
    assert_eq!(
        good.next().await.unwrap().unwrap(),
        Message::binary(b"cba".to_vec())
    );
    good.send(Message::text("text")).await.unwrap();
    let (code, message) = error_frame(good.next().await.unwrap().unwrap());
    assert_eq!(code, ErrorCode::Malformed);
    assert!(message.contains("binary"), "{message}");
    match good.next().await.unwrap().unwrap() {
        Message::Close(Some(frame)) => assert!(frame.reason.contains("binary")),
        other => panic!("expected a close frame, got {other:?}"),
    }
    let (mut third, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    third.next().await.unwrap().unwrap();
    third.send(Message::binary(b"end".to_vec())).await.unwrap();
    assert_eq!(
        third.next().await.unwrap().unwrap(),
        Message::binary(b"bye".to_vec())
    );
}

#[tokio::test]
async fn limits_refuse_oversized_frames_idle_clients_and_floods() {
    let limits = Limits {
        max_sessions: 2,
        max_frame_bytes: 1024,
        idle_timeout: Duration::from_millis(300),
        sessions_per_minute: 3,
        ..Limits::default()
    };
    let addr = serve(limits).await;
    let url = format!("ws://{addr}/api/session/toy");
    // Oversized frame: the connection is cut.
    let (mut a, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    a.next().await.unwrap().unwrap();
    a.send(Message::binary(vec![0u8; 4096])).await.unwrap();
    let (code, _) = error_frame(a.next().await.unwrap().unwrap());
    assert_eq!(code, ErrorCode::WrongSize);
    let next = a.next().await;
    assert!(!matches!(next, Some(Ok(Message::Binary(_)))), "{next:?}");
    // Idle client: closed by the server.
    let (mut b, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    b.next().await.unwrap().unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(5), b.next()).await;
    let (code, _) = error_frame(refused.unwrap().unwrap().unwrap());
    assert_eq!(code, ErrorCode::Refused);
    match tokio::time::timeout(Duration::from_secs(5), b.next())
        .await
        .unwrap()
    {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 4008, "{frame:?}");
            assert!(frame.reason.contains("timeout"), "{frame:?}");
        }
        other => panic!("expected an idle close, got {other:?}"),
    }
    // Third and fourth session within the minute from the same address: rate-limited.
    let _c = tokio_tungstenite::connect_async(&url).await.unwrap();
    let refused = tokio_tungstenite::connect_async(&url).await;
    assert!(refused.is_err(), "fourth session should be refused");
}

#[tokio::test]
async fn streamed_frames_follow_the_reply() {
    let addr = serve(Limits::default()).await;
    let url = format!("ws://{addr}/api/session/toy");
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.next().await.unwrap().unwrap();
    ws.send(Message::binary(b"stream".to_vec())).await.unwrap();
    for want in [b"2", b"1", b"0"] {
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::binary(want.to_vec())
        );
    }
    ws.send(Message::binary(b"ab".to_vec())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(b"ba".to_vec())
    );
}

#[tokio::test]
async fn memory_limits_refuse_large_models_and_full_budgets() {
    // Admission counts the transport's buffers: 100 MiB estimate + 1 MiB frame + 1 MiB writes.
    let limits = Limits {
        memory_budget: 250 << 20,
        sessions_per_minute: 0,
        max_frame_bytes: 1 << 20,
        write_buffer_bytes: 1 << 20,
        ..Limits::default()
    };
    let addr = serve(limits).await;
    // A model needing more than the per-session limit (default 2 GiB) is refused outright.
    match tokio_tungstenite::connect_async(format!("ws://{addr}/api/session/big")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 507);
            let body = String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("needs 3074 MB per session"), "{body}");
        }
        other => panic!("oversized session admitted: {other:?}"),
    }
    // Two 102 MiB sessions fit the 250 MiB budget, a third waits for one to finish.
    let url = format!("ws://{addr}/api/session/toy");
    let (mut a, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (_b, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("third session admitted: {other:?}"),
    }
    a.next().await.unwrap().unwrap();
    a.send(Message::binary(b"end".to_vec())).await.unwrap();
    while a.next().await.is_some() {}
    // The budget is released when a session ends.
    let mut admitted = false;
    for _ in 0..50 {
        if tokio_tungstenite::connect_async(&url).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "memory budget not released");
}
