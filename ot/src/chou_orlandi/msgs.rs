//! Base-OT messages, named after their sender; decoding validates every point.

use crate::OtError;
use curve25519_dalek::ristretto::CompressedRistretto;
use curve25519_dalek::traits::IsIdentity;
use curve25519_dalek::RistrettoPoint;

/// Size of a compressed Ristretto point.
const POINT_BYTES: usize = 32;

/// Decodes a point, rejecting non-canonical encodings and the identity.
fn decode_point(
    bytes: &[u8],
    message: &'static str,
    index: usize,
) -> Result<(CompressedRistretto, RistrettoPoint), OtError> {
    let compressed = CompressedRistretto::from_slice(bytes)
        .map_err(|_| OtError::InvalidPoint { message, index })?;
    let point = compressed
        .decompress()
        .ok_or(OtError::InvalidPoint { message, index })?;
    if point.is_identity() {
        return Err(OtError::IdentityPoint { message, index });
    }
    Ok((compressed, point))
}

/// Sender → receiver: the setup point `S = y·G` (32 bytes on the wire).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderSetup {
    pub(super) compressed: CompressedRistretto,
    pub(super) point: RistrettoPoint,
}

impl SenderSetup {
    const NAME: &'static str = "SenderSetup";

    /// The wire form: the compressed point.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.compressed.as_bytes().to_vec()
    }

    /// Parses and validates (canonical encoding, not the identity).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OtError> {
        if bytes.len() != POINT_BYTES {
            return Err(OtError::Length {
                message: Self::NAME,
                expected: POINT_BYTES,
                got: bytes.len(),
            });
        }
        let (compressed, point) = decode_point(bytes, Self::NAME, 0)?;
        Ok(SenderSetup { compressed, point })
    }
}

/// Receiver → sender: one point `R_i = c_i·S + x_i·G` per transfer (32 bytes each, no header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverChoices {
    pub(super) compressed: Vec<CompressedRistretto>,
    pub(super) points: Vec<RistrettoPoint>,
}

impl ReceiverChoices {
    const NAME: &'static str = "ReceiverChoices";

    /// Number of transfers.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The wire form: the compressed points, concatenated.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.compressed.iter().flat_map(|c| c.to_bytes()).collect()
    }

    /// Parses and validates every point.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OtError> {
        if !bytes.len().is_multiple_of(POINT_BYTES) {
            return Err(OtError::NotMultiple {
                message: Self::NAME,
                unit: POINT_BYTES,
                got: bytes.len(),
            });
        }
        let decode = |(i, chunk): (usize, &[u8])| decode_point(chunk, Self::NAME, i);
        #[cfg(not(target_arch = "wasm32"))]
        let decoded: Result<Vec<_>, OtError> = {
            use rayon::prelude::*;
            bytes
                .par_chunks(POINT_BYTES)
                .enumerate()
                .map(decode)
                .collect()
        };
        #[cfg(target_arch = "wasm32")]
        let decoded: Result<Vec<_>, OtError> =
            bytes.chunks(POINT_BYTES).enumerate().map(decode).collect();
        let (compressed, points) = decoded?.into_iter().unzip();
        Ok(ReceiverChoices { compressed, points })
    }
}
