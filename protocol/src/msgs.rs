//! Protocol messages: one WebSocket binary frame each, `[tag: u8][body]`.
//!
//! Decoding here checks the framing only (tag, header fields, declared lengths); the sessions then
//! check every size against the model's plan. Names say who sends: `Client*` or `Server*` tags.

use crate::ProtocolError;
use serde::Serialize;

/// Protocol version spoken by this build. 2: `Error` frames carry an [`ErrorCode`]; `ServerPlan`
/// carries the session's π key. 3: every plan stage carries its ReLU ring width k_l (the OT,
/// the garbled ReLUs and the online labels take k_l bits per ReLU); the `Expired` error code
/// (prepared sessions). 4: a plan stage names its op (`relu` with an optional clipping bound,
/// `max_pool` with its window, `logits`) instead of a ReLU flag; a garbled layer's instances
/// read `window` share words each (OT, labels). 5: output policies (`top_k` as the last stage's
/// op: a garbled top-k whose revealed indices end the session, no `ServerOutput`). 6: the OT
/// extension's matrix goes as a sequence of `ClientOtExtend` parts of at most [`OT_PART_ROWS`]
/// rows (each names its batch's transfer count and its first 128-row word). 7: the ReLU and
/// max-pool circuits end with the result's bits (and the "not negative" gate), and a
/// `ServerGarbled` frame's decoding is their arithmetic output (`cryptonas_gc::ShareDecoding`:
/// ⌈k/8⌉-byte words, three per bit when gated, one otherwise, and a correction per instance)
/// instead of the decoding bits of a garbled zeroing and subtraction; garbled tables begin with a
/// 16-byte header naming their circuit (`cryptonas_gc::Circuit::fingerprint`) and instance count.
pub const PROTOCOL_VERSION: u16 = 7;

/// Rows per `ClientOtExtend` part (the last may be shorter): 1 MiB frames. Neither side holds the
/// whole matrix (16 B per share bit, 32 MiB at 86K ReLUs), and a server bounds the frame a client
/// may send in that state by one part.
pub const OT_PART_ROWS: usize = 1 << 16;

/// One protocol message.
#[derive(Clone, PartialEq, Eq)]
pub enum Msg {
    /// Client → server: opens the session.
    ClientHello {
        /// The client's protocol version.
        version: u16,
    },
    /// Server → client: the public plan (JSON), this inference's session id (GC tweaks) and its π
    /// key (the garbling hash's permutation: public, but unpredictable before the session).
    ServerPlan {
        /// Fresh per inference.
        session_id: u64,
        /// Fresh per inference: AES key of the garbling hash's π.
        pi_key: [u8; 16],
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
    /// Client → server: one part of the OT-extension matrix for the client's share bits
    /// (`cryptonas_ot::kos::ExtendMatrix`; parts in order, at most [`OT_PART_ROWS`] rows each).
    ClientOtExtend(Vec<u8>),
    /// Server → client: the KOS check challenge.
    ServerOtChallenge(Vec<u8>),
    /// Client → server: the KOS check response.
    ClientOtResponse(Vec<u8>),
    /// Server → client: garbled tables and output decoding of ReLUs `first .. first + count`
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
        /// Output decoding: the arithmetic output's words (ReLU, max pool) or packed decoding bits (top-k).
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
    /// Either side: the session failed. The one channel for errors: transports send it, then close.
    Error {
        /// What kind of failure.
        code: ErrorCode,
        /// A readable reason (never a secret; bounded by the receiver's frame limit).
        message: String,
    },
}

impl std::fmt::Debug for Msg {
    /// Only the kind and the size: bodies may be secret-dependent and large.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({} B)", self.name(), self.encode().len())
    }
}

/// The kind of a message: the frame's first byte. Names say who sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[repr(u8)]
pub enum MsgKind {
    /// [`Msg::ClientHello`].
    ClientHello = 0x01,
    /// [`Msg::ClientHeKey`].
    ClientHeKey = 0x02,
    /// [`Msg::ClientHeMasks`].
    ClientHeMasks = 0x03,
    /// [`Msg::ClientOtSetup`].
    ClientOtSetup = 0x04,
    /// [`Msg::ClientOtExtend`].
    ClientOtExtend = 0x05,
    /// [`Msg::ClientOtResponse`].
    ClientOtResponse = 0x06,
    /// [`Msg::ClientInput`].
    ClientInput = 0x07,
    /// [`Msg::ClientMasked`].
    ClientMasked = 0x08,
    /// [`Msg::ServerPlan`].
    ServerPlan = 0x81,
    /// [`Msg::ServerHeResponse`].
    ServerHeResponse = 0x82,
    /// [`Msg::ServerOtChoices`].
    ServerOtChoices = 0x83,
    /// [`Msg::ServerOtChallenge`].
    ServerOtChallenge = 0x84,
    /// [`Msg::ServerGarbled`].
    ServerGarbled = 0x85,
    /// [`Msg::ServerLabels`].
    ServerLabels = 0x86,
    /// [`Msg::ServerOutput`].
    ServerOutput = 0x87,
    /// [`Msg::Error`].
    Error = 0xff,
}

impl MsgKind {
    /// Every kind, in tag order.
    pub const ALL: [MsgKind; 16] = [
        MsgKind::ClientHello,
        MsgKind::ClientHeKey,
        MsgKind::ClientHeMasks,
        MsgKind::ClientOtSetup,
        MsgKind::ClientOtExtend,
        MsgKind::ClientOtResponse,
        MsgKind::ClientInput,
        MsgKind::ClientMasked,
        MsgKind::ServerPlan,
        MsgKind::ServerHeResponse,
        MsgKind::ServerOtChoices,
        MsgKind::ServerOtChallenge,
        MsgKind::ServerGarbled,
        MsgKind::ServerLabels,
        MsgKind::ServerOutput,
        MsgKind::Error,
    ];

    /// The kind a frame's first byte stands for.
    pub fn from_tag(tag: u8) -> Option<MsgKind> {
        MsgKind::ALL.into_iter().find(|k| k.tag() == tag)
    }

    /// The frame's first byte.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// The message's name, for errors, logs and progress.
    pub fn name(self) -> &'static str {
        match self {
            MsgKind::ClientHello => "ClientHello",
            MsgKind::ClientHeKey => "ClientHeKey",
            MsgKind::ClientHeMasks => "ClientHeMasks",
            MsgKind::ClientOtSetup => "ClientOtSetup",
            MsgKind::ClientOtExtend => "ClientOtExtend",
            MsgKind::ClientOtResponse => "ClientOtResponse",
            MsgKind::ClientInput => "ClientInput",
            MsgKind::ClientMasked => "ClientMasked",
            MsgKind::ServerPlan => "ServerPlan",
            MsgKind::ServerHeResponse => "ServerHeResponse",
            MsgKind::ServerOtChoices => "ServerOtChoices",
            MsgKind::ServerOtChallenge => "ServerOtChallenge",
            MsgKind::ServerGarbled => "ServerGarbled",
            MsgKind::ServerLabels => "ServerLabels",
            MsgKind::ServerOutput => "ServerOutput",
            MsgKind::Error => "Error",
        }
    }

    /// Whether the header starts with a stage index (`u32` LE right after the tag).
    pub fn has_stage(self) -> bool {
        matches!(
            self,
            MsgKind::ClientHeMasks
                | MsgKind::ClientMasked
                | MsgKind::ServerHeResponse
                | MsgKind::ServerGarbled
                | MsgKind::ServerLabels
        )
    }
}

impl std::fmt::Display for MsgKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a session failed, as both sides name it: the first field of an [`Msg::Error`] frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[repr(u16)]
pub enum ErrorCode {
    /// A frame that does not decode.
    Malformed = 1,
    /// A well-formed message not allowed in the current state.
    Unexpected = 2,
    /// Sizes that disagree with the model's plan.
    WrongSize = 3,
    /// A failed cryptographic check.
    Check = 4,
    /// The peers speak different protocol versions.
    Version = 5,
    /// The sender refused to go on for a reason of its own (limits, shutdown, timeouts).
    Refused = 6,
    /// A broken invariant inside the sender: a bug, not the peer's fault.
    Internal = 7,
    /// A prepared session waited longer for its image than the server keeps it: prepare again.
    Expired = 8,
}

impl ErrorCode {
    const ALL: [ErrorCode; 8] = [
        ErrorCode::Malformed,
        ErrorCode::Unexpected,
        ErrorCode::WrongSize,
        ErrorCode::Check,
        ErrorCode::Version,
        ErrorCode::Refused,
        ErrorCode::Internal,
        ErrorCode::Expired,
    ];

    /// The code on the wire.
    pub fn to_u16(self) -> u16 {
        self as u16
    }

    /// The code a wire value stands for.
    pub fn from_u16(v: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.to_u16() == v)
    }

    /// A short lower-case name (`"malformed"`, `"version"`…) for logs and JavaScript.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::Unexpected => "unexpected",
            ErrorCode::WrongSize => "wrong-size",
            ErrorCode::Check => "check",
            ErrorCode::Version => "version",
            ErrorCode::Refused => "refused",
            ErrorCode::Internal => "internal",
            ErrorCode::Expired => "expired",
        }
    }
}

/// Where the parts of a `ServerGarbled` frame lie, read from its fixed head alone. A transport
/// can then move the bulk (tables and output decoding, ≈ 96 % of the offline bytes) straight to the
/// worker that will evaluate it, and give the session only the head and the label corrections
/// ([`crate::ClientSession::handle_garbled_head`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GarbledLayout {
    /// Stage index.
    pub stage: u32,
    /// First ReLU of the chunk within its layer.
    pub first: u32,
    /// ReLUs in the chunk.
    pub count: u32,
    /// The garbled tables' bytes within the frame.
    pub tables: std::ops::Range<usize>,
    /// The output decoding's bytes within the frame.
    pub decoding: std::ops::Range<usize>,
    /// The label corrections' bytes within the frame (empty unless pre-garbled).
    pub corrections: std::ops::Range<usize>,
}

impl GarbledLayout {
    /// Bytes of the head: the tag, stage, first, count and the two lengths.
    pub const HEAD: usize = 1 + 4 + 4 + 4 + 8 + 8;

    /// Reads the layout of a `ServerGarbled` frame of `frame_len` bytes from (at least) its
    /// first [`GarbledLayout::HEAD`] bytes; the declared lengths must fit the frame.
    pub fn read(head: &[u8], frame_len: usize) -> Result<GarbledLayout, ProtocolError> {
        let what = "ServerGarbled";
        let head = head
            .get(..Self::HEAD)
            .filter(|_| frame_len >= Self::HEAD)
            .ok_or_else(|| malformed(what, format!("a frame needs {} bytes", Self::HEAD)))?;
        if head[0] != MsgKind::ServerGarbled.tag() {
            return Err(malformed(what, format!("tag {:#04x}", head[0])));
        }
        let mut r = Reader {
            what,
            rest: &head[1..],
        };
        let (stage, first, count) = (r.u32()?, r.u32()?, r.u32()?);
        let (n, d) = (r.u64()?, r.u64()?);
        let mut at = Self::HEAD;
        let mut part = |len: u64| {
            let end = usize::try_from(len)
                .ok()
                .and_then(|len| at.checked_add(len))
                .filter(|&end| end <= frame_len)
                .ok_or_else(|| malformed(what, format!("length {len} exceeds the frame")))?;
            let range = at..end;
            at = end;
            Ok::<_, ProtocolError>(range)
        };
        let tables = part(n)?;
        let decoding = part(d)?;
        Ok(GarbledLayout {
            stage,
            first,
            count,
            tables,
            decoding,
            corrections: at..frame_len,
        })
    }
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
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, ProtocolError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, ProtocolError> {
        Ok(u64::from_le_bytes(self.array()?))
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

/// What a frame is, read from its tag and header without decoding the body: for transports that
/// show progress or count bytes per message kind and layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// The message kind.
    pub kind: MsgKind,
    /// The stage, for the kinds that carry one ([`MsgKind::has_stage`]).
    pub stage: Option<u32>,
}

impl FrameInfo {
    /// Reads `frame`'s kind and stage; `None` for an empty frame or an unknown tag.
    pub fn of(frame: &[u8]) -> Option<FrameInfo> {
        let (&t, body) = frame.split_first()?;
        let kind = MsgKind::from_tag(t)?;
        let stage = match body.get(..4) {
            Some(b) if kind.has_stage() => Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            _ => None,
        };
        Some(FrameInfo { kind, stage })
    }
}

impl Msg {
    /// The message's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// The message's kind (the only place a variant is mapped to its kind).
    pub fn kind(&self) -> MsgKind {
        match self {
            Msg::ClientHello { .. } => MsgKind::ClientHello,
            Msg::ServerPlan { .. } => MsgKind::ServerPlan,
            Msg::ClientHeKey(_) => MsgKind::ClientHeKey,
            Msg::ClientHeMasks { .. } => MsgKind::ClientHeMasks,
            Msg::ServerHeResponse { .. } => MsgKind::ServerHeResponse,
            Msg::ClientOtSetup(_) => MsgKind::ClientOtSetup,
            Msg::ServerOtChoices(_) => MsgKind::ServerOtChoices,
            Msg::ClientOtExtend(_) => MsgKind::ClientOtExtend,
            Msg::ServerOtChallenge(_) => MsgKind::ServerOtChallenge,
            Msg::ClientOtResponse(_) => MsgKind::ClientOtResponse,
            Msg::ServerGarbled { .. } => MsgKind::ServerGarbled,
            Msg::ClientInput(_) => MsgKind::ClientInput,
            Msg::ServerLabels { .. } => MsgKind::ServerLabels,
            Msg::ClientMasked { .. } => MsgKind::ClientMasked,
            Msg::ServerOutput(_) => MsgKind::ServerOutput,
            Msg::Error { .. } => MsgKind::Error,
        }
    }

    /// The frame: the tag, the fixed header, then the variable-size parts.
    pub fn encode(&self) -> Vec<u8> {
        let stage = |stage: &u32| stage.to_le_bytes().to_vec();
        let (header, parts): (Vec<u8>, Vec<&[u8]>) = match self {
            Msg::ClientHello { version } => (version.to_le_bytes().to_vec(), vec![]),
            Msg::ServerPlan {
                session_id,
                pi_key,
                plan,
            } => {
                let mut h = session_id.to_le_bytes().to_vec();
                h.extend_from_slice(pi_key);
                (h, vec![plan])
            }
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
            Msg::Error { code, message } => (
                code.to_u16().to_le_bytes().to_vec(),
                vec![message.as_bytes()],
            ),
        };
        let len = 1 + header.len() + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut out = Vec::with_capacity(len);
        out.push(self.kind().tag());
        out.extend_from_slice(&header);
        for p in parts {
            out.extend_from_slice(p);
        }
        out
    }

    /// The start of a frame whose body is one byte string (`ClientOtExtend`, `ClientInput`, ...)
    /// for writing the body in place: `head ++ body` is exactly [`Msg::encode`] of the message
    /// holding `body`, without building the body and then copying it (the OT matrix is the
    /// session's largest message). `None` for kinds with a fixed header.
    pub fn frame_head(kind: MsgKind) -> Option<Vec<u8>> {
        match kind {
            MsgKind::ClientHeKey
            | MsgKind::ClientOtSetup
            | MsgKind::ServerOtChoices
            | MsgKind::ClientOtExtend
            | MsgKind::ServerOtChallenge
            | MsgKind::ClientOtResponse
            | MsgKind::ClientInput
            | MsgKind::ServerOutput => Some(vec![kind.tag()]),
            MsgKind::ClientHello
            | MsgKind::ClientHeMasks
            | MsgKind::ClientMasked
            | MsgKind::ServerPlan
            | MsgKind::ServerHeResponse
            | MsgKind::ServerGarbled
            | MsgKind::ServerLabels
            | MsgKind::Error => None,
        }
    }

    /// [`Msg::frame_head`] for the kinds whose body is a stage index and one byte string
    /// (`ClientHeMasks`, `ServerHeResponse`, `ServerLabels`, `ClientMasked`); `None` for others.
    pub fn staged_frame_head(kind: MsgKind, stage: u32) -> Option<Vec<u8>> {
        match kind {
            MsgKind::ClientHeMasks
            | MsgKind::ServerHeResponse
            | MsgKind::ServerLabels
            | MsgKind::ClientMasked => {
                let mut head = vec![kind.tag()];
                head.extend_from_slice(&stage.to_le_bytes());
                Some(head)
            }
            _ => None,
        }
    }

    /// The stage and body of a frame of `kind` (one of [`Msg::staged_frame_head`]'s kinds) read
    /// in place, without the copy [`Msg::decode`] makes; `None` for another frame.
    pub fn staged_body(frame: &[u8], kind: MsgKind) -> Option<(u32, &[u8])> {
        let head = Msg::staged_frame_head(kind, 0)?;
        if frame.len() < head.len() || frame[0] != kind.tag() {
            return None;
        }
        let stage = u32::from_le_bytes(frame[1..5].try_into().expect("4 bytes"));
        Some((stage, &frame[head.len()..]))
    }

    /// Parses one frame (framing only; sizes are checked by the sessions).
    pub fn decode(frame: &[u8]) -> Result<Msg, ProtocolError> {
        let (&t, body) = frame
            .split_first()
            .ok_or_else(|| malformed("frame", "empty frame"))?;
        let kind = MsgKind::from_tag(t)
            .ok_or_else(|| malformed("frame", format!("unknown tag {t:#04x}")))?;
        let r = |what| Reader { what, rest: body };
        Ok(match kind {
            MsgKind::ClientHello => {
                let mut r = r("ClientHello");
                let version = r.u16()?;
                r.end()?;
                Msg::ClientHello { version }
            }
            MsgKind::ServerPlan => {
                let mut r = r("ServerPlan");
                let session_id = r.u64()?;
                let pi_key = r.array()?;
                Msg::ServerPlan {
                    session_id,
                    pi_key,
                    plan: r.rest(),
                }
            }
            MsgKind::ClientHeKey => Msg::ClientHeKey(body.to_vec()),
            MsgKind::ClientHeMasks => {
                let mut r = r("ClientHeMasks");
                let stage = r.u32()?;
                Msg::ClientHeMasks {
                    stage,
                    body: r.rest(),
                }
            }
            MsgKind::ServerHeResponse => {
                let mut r = r("ServerHeResponse");
                let stage = r.u32()?;
                Msg::ServerHeResponse {
                    stage,
                    body: r.rest(),
                }
            }
            MsgKind::ClientOtSetup => Msg::ClientOtSetup(body.to_vec()),
            MsgKind::ServerOtChoices => Msg::ServerOtChoices(body.to_vec()),
            MsgKind::ClientOtExtend => Msg::ClientOtExtend(body.to_vec()),
            MsgKind::ServerOtChallenge => Msg::ServerOtChallenge(body.to_vec()),
            MsgKind::ClientOtResponse => Msg::ClientOtResponse(body.to_vec()),
            MsgKind::ServerGarbled => {
                let at = GarbledLayout::read(frame, frame.len())?;
                Msg::ServerGarbled {
                    stage: at.stage,
                    first: at.first,
                    count: at.count,
                    tables: frame[at.tables].to_vec(),
                    decoding: frame[at.decoding].to_vec(),
                    corrections: frame[at.corrections].to_vec(),
                }
            }
            MsgKind::ClientInput => Msg::ClientInput(body.to_vec()),
            MsgKind::ServerLabels => {
                let mut r = r("ServerLabels");
                let stage = r.u32()?;
                Msg::ServerLabels {
                    stage,
                    body: r.rest(),
                }
            }
            MsgKind::ClientMasked => {
                let mut r = r("ClientMasked");
                let stage = r.u32()?;
                Msg::ClientMasked {
                    stage,
                    body: r.rest(),
                }
            }
            MsgKind::ServerOutput => Msg::ServerOutput(body.to_vec()),
            MsgKind::Error => {
                let mut r = r("Error");
                let code = r.u16()?;
                let code = ErrorCode::from_u16(code)
                    .ok_or_else(|| malformed("Error", format!("unknown error code {code}")))?;
                Msg::Error {
                    code,
                    message: String::from_utf8_lossy(r.rest).into_owned(),
                }
            }
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
                pi_key: [9; 16],
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
            Msg::Error {
                code: ErrorCode::Check,
                message: "boom".into(),
            },
        ]
    }

    #[test]
    fn round_trip_every_message() {
        for m in all() {
            assert_eq!(Msg::decode(&m.encode()).unwrap(), m, "{}", m.name());
        }
    }

    /// A frame started with `frame_head` (`staged_frame_head`) and its body appended is
    /// `encode`'s frame, for every kind whose body is one byte string (after a stage index); the
    /// other kinds have no head.
    #[test]
    fn frame_head_plus_body_is_the_encoded_frame() {
        let mut bare = 0;
        for m in all() {
            let body: Option<&[u8]> = match &m {
                Msg::ClientHeKey(b)
                | Msg::ClientOtSetup(b)
                | Msg::ServerOtChoices(b)
                | Msg::ClientOtExtend(b)
                | Msg::ServerOtChallenge(b)
                | Msg::ClientOtResponse(b)
                | Msg::ClientInput(b)
                | Msg::ServerOutput(b) => Some(b),
                _ => None,
            };
            match (Msg::frame_head(m.kind()), body) {
                (Some(mut frame), Some(body)) => {
                    frame.extend_from_slice(body);
                    assert_eq!(frame, m.encode(), "{}", m.name());
                    bare += 1;
                }
                (None, None) => {}
                (head, _) => panic!("{}: head {head:?} for body {body:?}", m.name()),
            }
        }
        assert_eq!(bare, 8);
        let mut staged = 0;
        for m in all() {
            let (stage, body) = match &m {
                Msg::ClientHeMasks { stage, body }
                | Msg::ServerHeResponse { stage, body }
                | Msg::ServerLabels { stage, body }
                | Msg::ClientMasked { stage, body } => (*stage, Some(body)),
                _ => (0, None),
            };
            match (Msg::staged_frame_head(m.kind(), stage), body) {
                (Some(mut frame), Some(body)) => {
                    frame.extend_from_slice(body);
                    assert_eq!(frame, m.encode(), "{}", m.name());
                    assert_eq!(
                        Msg::staged_body(&frame, m.kind()),
                        Some((stage, body.as_slice()))
                    );
                    assert_eq!(Msg::staged_body(&frame[..4], m.kind()), None);
                    staged += 1;
                }
                (None, None) => {}
                (head, _) => panic!("{}: staged head {head:?} for body {body:?}", m.name()),
            }
        }
        assert_eq!(staged, 4);
    }

    #[test]
    fn frame_kind_names_every_message() {
        for m in all() {
            let info = FrameInfo::of(&m.encode()).unwrap();
            assert_eq!(info.kind, m.kind());
        }
        let masked = Msg::ClientMasked {
            stage: 5,
            body: vec![],
        };
        assert_eq!(FrameInfo::of(&masked.encode()).unwrap().stage, Some(5));
        assert_eq!(FrameInfo::of(&[0x42]), None);
        assert_eq!(FrameInfo::of(&[]), None);
        for kind in MsgKind::ALL {
            assert_eq!(MsgKind::from_tag(kind.tag()), Some(kind));
        }
    }

    #[test]
    fn truncated_and_unknown_frames_are_errors() {
        assert!(Msg::decode(&[]).is_err());
        assert!(Msg::decode(&[0x42]).is_err());
        assert!(Msg::decode(&[0x01, 1]).is_err());
        assert!(Msg::decode(&[0x01, 1, 0, 0]).is_err());
        assert!(Msg::decode(&[0xff, 99, 0]).is_err(), "unknown error code");
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
