//! Protocol messages: one WebSocket binary frame each, `[tag: u8][body]`.
//!
//! Decoding here checks the framing only (tag, header fields, declared lengths); the sessions then
//! check every size against the model's plan. Names say who sends: `Client*` or `Server*` tags.

use crate::ProtocolError;

/// Protocol version spoken by this build.
pub const PROTOCOL_VERSION: u16 = 1;

/// One protocol message.
#[derive(Clone, PartialEq, Eq)]
pub enum Msg {
    /// Client → server: opens the session.
    ClientHello {
        /// The client's protocol version.
        version: u16,
    },
    /// Server → client: the public plan (JSON) and this inference's session id (GC tweaks).
    ServerPlan {
        /// Fresh per inference.
        session_id: u64,
        /// [`crate::Plan`] as JSON.
        plan: Vec<u8>,
    },
    /// Client → server: the BFV public key.
    ClientHeKey(Vec<u8>),
    /// Client → server: encrypted masks of one stage's sources.
    ClientHeMasks {
        /// Stage index.
        stage: u32,
        /// `cryptonas_he::MasksMsg` bytes.
        body: Vec<u8>,
    },
    /// Server → client: Enc(L(r) − s) for one stage.
    ServerHeResponse {
        /// Stage index.
        stage: u32,
        /// `cryptonas_he::ResponseMsg` bytes.
        body: Vec<u8>,
    },
    /// Client → server: base-OT setup (the OT-extension receiver acts as base-OT sender).
    ClientOtSetup(Vec<u8>),
    /// Server → client: base-OT choices.
    ServerOtChoices(Vec<u8>),
    /// Client → server: the OT-extension matrix for the client's share bits.
    ClientOtExtend(Vec<u8>),
    /// Server → client: the KOS check challenge.
    ServerOtChallenge(Vec<u8>),
    /// Client → server: the KOS check response.
    ClientOtResponse(Vec<u8>),
    /// Server → client: garbled tables and output-decoding bits of ReLUs `first .. first + count`
    /// of one layer. Layers are streamed in chunks so neither side materialises a whole layer's
    /// tables in one buffer, and so a browser can hand chunks to separate workers.
    ServerGarbled {
        /// Stage index.
        stage: u32,
        /// First ReLU of the chunk within its layer.
        first: u32,
        /// ReLUs in the chunk.
        count: u32,
        /// Raw tables.
        tables: Vec<u8>,
        /// Packed decoding bits.
        decoding: Vec<u8>,
        /// Label corrections W₀ ⊕ K₀ for the client's share bits (16 B each) when the chunk was
        /// garbled ahead of the session (a server's pool); empty otherwise.
        corrections: Vec<u8>,
    },
    /// Client → server: the masked image x − r (starts the online phase).
    ClientInput(Vec<u8>),
    /// Server → client: active labels of the server's share of one ReLU layer's input.
    ServerLabels {
        /// Stage index.
        stage: u32,
        /// Raw labels.
        body: Vec<u8>,
    },
    /// Client → server: the client's ReLU-output share minus its mask, o − r.
    ClientMasked {
        /// Stage index.
        stage: u32,
        /// Packed ring elements.
        body: Vec<u8>,
    },
    /// Server → client: the server's share of the logits (only the client learns them).
    ServerOutput(Vec<u8>),
    /// Either side: the session failed; the text says why.
    Error(String),
}

impl std::fmt::Debug for Msg {
    /// Only the kind and the size: bodies may be secret-dependent and large.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({} B)", self.name(), self.encode().len())
    }
}

mod tag {
    pub(super) const CLIENT_HELLO: u8 = 0x01;
    pub(super) const CLIENT_HE_KEY: u8 = 0x02;
    pub(super) const CLIENT_HE_MASKS: u8 = 0x03;
    pub(super) const CLIENT_OT_SETUP: u8 = 0x04;
    pub(super) const CLIENT_OT_EXTEND: u8 = 0x05;
    pub(super) const CLIENT_OT_RESPONSE: u8 = 0x06;
    pub(super) const CLIENT_INPUT: u8 = 0x07;
    pub(super) const CLIENT_MASKED: u8 = 0x08;
    pub(super) const SERVER_PLAN: u8 = 0x81;
    pub(super) const SERVER_HE_RESPONSE: u8 = 0x82;
    pub(super) const SERVER_OT_CHOICES: u8 = 0x83;
    pub(super) const SERVER_OT_CHALLENGE: u8 = 0x84;
    pub(super) const SERVER_GARBLED: u8 = 0x85;
    pub(super) const SERVER_LABELS: u8 = 0x86;
    pub(super) const SERVER_OUTPUT: u8 = 0x87;
    pub(super) const ERROR: u8 = 0xff;
}

fn malformed(what: &'static str, reason: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed {
        what,
        reason: reason.into(),
    }
}

/// Reads fixed-size header fields off the front of a body.
struct Reader<'a> {
    what: &'static str,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.rest.len() < n {
            return Err(malformed(
                self.what,
                format!("truncated: need {n} more bytes, have {}", self.rest.len()),
            ));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16, ProtocolError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, ProtocolError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn rest(self) -> Vec<u8> {
        self.rest.to_vec()
    }
    fn end(self) -> Result<(), ProtocolError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(malformed(
                self.what,
                format!("{} trailing bytes", self.rest.len()),
            ))
        }
    }
}

/// The name of the message a tag stands for (`"unknown"` for none).
fn tag_name(t: u8) -> &'static str {
    match t {
        tag::CLIENT_HELLO => "ClientHello",
        tag::CLIENT_HE_KEY => "ClientHeKey",
        tag::CLIENT_HE_MASKS => "ClientHeMasks",
        tag::CLIENT_OT_SETUP => "ClientOtSetup",
        tag::CLIENT_OT_EXTEND => "ClientOtExtend",
        tag::CLIENT_OT_RESPONSE => "ClientOtResponse",
        tag::CLIENT_INPUT => "ClientInput",
        tag::CLIENT_MASKED => "ClientMasked",
        tag::SERVER_PLAN => "ServerPlan",
        tag::SERVER_HE_RESPONSE => "ServerHeResponse",
        tag::SERVER_OT_CHOICES => "ServerOtChoices",
        tag::SERVER_OT_CHALLENGE => "ServerOtChallenge",
        tag::SERVER_GARBLED => "ServerGarbled",
        tag::SERVER_LABELS => "ServerLabels",
        tag::SERVER_OUTPUT => "ServerOutput",
        tag::ERROR => "Error",
        _ => "unknown",
    }
}

/// What a frame is, read from its tag and header without decoding the body: for transports that
/// show progress or count bytes per message kind and layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameKind {
    /// The message name ([`Msg::name`]), `"unknown"` for an unknown tag.
    pub name: &'static str,
    /// The stage, for the messages that carry one.
    pub stage: Option<u32>,
}

impl FrameKind {
    /// Reads `frame`'s kind; `None` for an empty frame.
    pub fn of(frame: &[u8]) -> Option<FrameKind> {
        let (&t, body) = frame.split_first()?;
        let name = tag_name(t);
        let staged = matches!(
            t,
            tag::CLIENT_HE_MASKS
                | tag::CLIENT_MASKED
                | tag::SERVER_HE_RESPONSE
                | tag::SERVER_GARBLED
                | tag::SERVER_LABELS
        );
        let stage = match body.get(..4) {
            Some(b) if staged => Some(u32::from_le_bytes(b.try_into().expect("4 bytes"))),
            _ => None,
        };
        Some(FrameKind { name, stage })
    }
}

impl Msg {
    /// The message's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        tag_name(self.tag())
    }

    /// The frame's first byte (the only place a variant is mapped to its tag).
    fn tag(&self) -> u8 {
        match self {
            Msg::ClientHello { .. } => tag::CLIENT_HELLO,
            Msg::ServerPlan { .. } => tag::SERVER_PLAN,
            Msg::ClientHeKey(_) => tag::CLIENT_HE_KEY,
            Msg::ClientHeMasks { .. } => tag::CLIENT_HE_MASKS,
            Msg::ServerHeResponse { .. } => tag::SERVER_HE_RESPONSE,
            Msg::ClientOtSetup(_) => tag::CLIENT_OT_SETUP,
            Msg::ServerOtChoices(_) => tag::SERVER_OT_CHOICES,
            Msg::ClientOtExtend(_) => tag::CLIENT_OT_EXTEND,
            Msg::ServerOtChallenge(_) => tag::SERVER_OT_CHALLENGE,
            Msg::ClientOtResponse(_) => tag::CLIENT_OT_RESPONSE,
            Msg::ServerGarbled { .. } => tag::SERVER_GARBLED,
            Msg::ClientInput(_) => tag::CLIENT_INPUT,
            Msg::ServerLabels { .. } => tag::SERVER_LABELS,
            Msg::ClientMasked { .. } => tag::CLIENT_MASKED,
            Msg::ServerOutput(_) => tag::SERVER_OUTPUT,
            Msg::Error(_) => tag::ERROR,
        }
    }

    /// The frame: the tag, the fixed header, then the variable-size parts.
    pub fn encode(&self) -> Vec<u8> {
        let stage = |stage: &u32| stage.to_le_bytes().to_vec();
        let (header, parts): (Vec<u8>, Vec<&[u8]>) = match self {
            Msg::ClientHello { version } => (version.to_le_bytes().to_vec(), vec![]),
            Msg::ServerPlan { session_id, plan } => (session_id.to_le_bytes().to_vec(), vec![plan]),
            Msg::ClientHeKey(b)
            | Msg::ClientOtSetup(b)
            | Msg::ServerOtChoices(b)
            | Msg::ClientOtExtend(b)
            | Msg::ServerOtChallenge(b)
            | Msg::ClientOtResponse(b)
            | Msg::ClientInput(b)
            | Msg::ServerOutput(b) => (vec![], vec![b]),
            Msg::ClientHeMasks { stage: st, body }
            | Msg::ServerHeResponse { stage: st, body }
            | Msg::ServerLabels { stage: st, body }
            | Msg::ClientMasked { stage: st, body } => (stage(st), vec![body]),
            Msg::ServerGarbled {
                stage: st,
                first,
                count,
                tables,
                decoding,
                corrections,
            } => {
                let mut h = stage(st);
                h.extend_from_slice(&first.to_le_bytes());
                h.extend_from_slice(&count.to_le_bytes());
                h.extend_from_slice(&(tables.len() as u64).to_le_bytes());
                h.extend_from_slice(&(decoding.len() as u64).to_le_bytes());
                (h, vec![tables, decoding, corrections])
            }
            Msg::Error(text) => (vec![], vec![text.as_bytes()]),
        };
        let len = 1 + header.len() + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut out = Vec::with_capacity(len);
        out.push(self.tag());
        out.extend_from_slice(&header);
        for p in parts {
            out.extend_from_slice(p);
        }
        out
    }

    /// Parses one frame (framing only; sizes are checked by the sessions).
    pub fn decode(frame: &[u8]) -> Result<Msg, ProtocolError> {
        let (&t, body) = frame
            .split_first()
            .ok_or_else(|| malformed("frame", "empty frame"))?;
        let r = |what| Reader { what, rest: body };
        Ok(match t {
            tag::CLIENT_HELLO => {
                let mut r = r("ClientHello");
                let version = r.u16()?;
                r.end()?;
                Msg::ClientHello { version }
            }
            tag::SERVER_PLAN => {
                let mut r = r("ServerPlan");
                let session_id = r.u64()?;
                Msg::ServerPlan {
                    session_id,
                    plan: r.rest(),
                }
            }
            tag::CLIENT_HE_KEY => Msg::ClientHeKey(body.to_vec()),
            tag::CLIENT_HE_MASKS => {
                let mut r = r("ClientHeMasks");
                let stage = r.u32()?;
                Msg::ClientHeMasks {
                    stage,
                    body: r.rest(),
                }
            }
            tag::SERVER_HE_RESPONSE => {
                let mut r = r("ServerHeResponse");
                let stage = r.u32()?;
                Msg::ServerHeResponse {
                    stage,
                    body: r.rest(),
                }
            }
            tag::CLIENT_OT_SETUP => Msg::ClientOtSetup(body.to_vec()),
            tag::SERVER_OT_CHOICES => Msg::ServerOtChoices(body.to_vec()),
            tag::CLIENT_OT_EXTEND => Msg::ClientOtExtend(body.to_vec()),
            tag::SERVER_OT_CHALLENGE => Msg::ServerOtChallenge(body.to_vec()),
            tag::CLIENT_OT_RESPONSE => Msg::ClientOtResponse(body.to_vec()),
            tag::SERVER_GARBLED => {
                let mut r = r("ServerGarbled");
                let stage = r.u32()?;
                let first = r.u32()?;
                let count = r.u32()?;
                let n = r.u64()?;
                let d = r.u64()?;
                let fits = |n: u64, left: usize| {
                    usize::try_from(n)
                        .ok()
                        .filter(|&n| n <= left)
                        .ok_or_else(|| {
                            malformed("ServerGarbled", format!("length {n} exceeds the frame"))
                        })
                };
                let n = fits(n, r.rest.len())?;
                let tables = r.take(n)?.to_vec();
                let d = fits(d, r.rest.len())?;
                let decoding = r.take(d)?.to_vec();
                Msg::ServerGarbled {
                    stage,
                    first,
                    count,
                    tables,
                    decoding,
                    corrections: r.rest(),
                }
            }
            tag::CLIENT_INPUT => Msg::ClientInput(body.to_vec()),
            tag::SERVER_LABELS => {
                let mut r = r("ServerLabels");
                let stage = r.u32()?;
                Msg::ServerLabels {
                    stage,
                    body: r.rest(),
                }
            }
            tag::CLIENT_MASKED => {
                let mut r = r("ClientMasked");
                let stage = r.u32()?;
                Msg::ClientMasked {
                    stage,
                    body: r.rest(),
                }
            }
            tag::SERVER_OUTPUT => Msg::ServerOutput(body.to_vec()),
            tag::ERROR => Msg::Error(String::from_utf8_lossy(body).into_owned()),
            other => return Err(malformed("frame", format!("unknown tag {other:#04x}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Msg> {
        vec![
            Msg::ClientHello { version: 1 },
            Msg::ServerPlan {
                session_id: 7,
                plan: b"{}".to_vec(),
            },
            Msg::ClientHeKey(vec![1, 2]),
            Msg::ClientHeMasks {
                stage: 3,
                body: vec![4],
            },
            Msg::ServerHeResponse {
                stage: 3,
                body: vec![],
            },
            Msg::ClientOtSetup(vec![9; 3]),
            Msg::ServerOtChoices(vec![9; 4]),
            Msg::ClientOtExtend(vec![9; 5]),
            Msg::ServerOtChallenge(vec![9; 6]),
            Msg::ClientOtResponse(vec![9; 7]),
            Msg::ServerGarbled {
                stage: 2,
                first: 64,
                count: 1,
                tables: vec![1; 32],
                decoding: vec![2; 3],
                corrections: vec![3; 16],
            },
            Msg::ClientInput(vec![1; 12]),
            Msg::ServerLabels {
                stage: 0,
                body: vec![5; 16],
            },
            Msg::ClientMasked {
                stage: 0,
                body: vec![5; 4],
            },
            Msg::ServerOutput(vec![1; 40]),
            Msg::Error("boom".into()),
        ]
    }

    #[test]
    fn round_trip_every_message() {
        for m in all() {
            assert_eq!(Msg::decode(&m.encode()).unwrap(), m, "{}", m.name());
        }
    }

    #[test]
    fn frame_kind_names_every_message() {
        for m in all() {
            let kind = FrameKind::of(&m.encode()).unwrap();
            assert_eq!(kind.name, m.name());
        }
        let masked = Msg::ClientMasked {
            stage: 5,
            body: vec![],
        };
        assert_eq!(FrameKind::of(&masked.encode()).unwrap().stage, Some(5));
        assert_eq!(FrameKind::of(&[0x42]).unwrap().name, "unknown");
        assert_eq!(FrameKind::of(&[]), None);
    }

    #[test]
    fn truncated_and_unknown_frames_are_errors() {
        assert!(Msg::decode(&[]).is_err());
        assert!(Msg::decode(&[0x42]).is_err());
        assert!(Msg::decode(&[tag::CLIENT_HELLO, 1]).is_err());
        assert!(Msg::decode(&[tag::CLIENT_HELLO, 1, 0, 0]).is_err());
        let g = Msg::ServerGarbled {
            stage: 2,
            first: 64,
            count: 1,
            tables: vec![1; 32],
            decoding: vec![2; 3],
            corrections: vec![],
        }
        .encode();
        for cut in 0..29 {
            assert!(Msg::decode(&g[..cut]).is_err(), "cut at {cut}");
        }
        let mut lying = g.clone();
        lying[13..21].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Msg::decode(&lying).is_err());
        let mut lying = g.clone();
        lying[21..29].copy_from_slice(&4u64.to_le_bytes());
        assert!(
            Msg::decode(&lying).is_err(),
            "decoding length beyond the frame"
        );
        // Every prefix of every message decodes to an error or a message, never a panic.
        for m in all() {
            let f = m.encode();
            for cut in 0..f.len() {
                let _ = Msg::decode(&f[..cut]);
            }
        }
    }
}
