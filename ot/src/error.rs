//! Errors of every OT protocol in this crate.

/// What went wrong. Malformed messages and protocol violations are reported, never panicked on.
///
/// After any error the protocol object has been consumed: a session that saw an error must be
/// abandoned (in particular after [`OtError::ConsistencyCheckFailed`], which may mean the peer tried
/// to learn bits of Δ).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtError {
    /// A message has the wrong total length.
    #[error("{message}: expected {expected} bytes, got {got}")]
    Length {
        /// The message type being decoded.
        message: &'static str,
        /// The length the header (or the fixed format) implies.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// A message made of fixed-size records has a length that is not a whole number of records.
    #[error("{message}: length {got} is not a multiple of {unit} bytes")]
    NotMultiple {
        /// The message type being decoded.
        message: &'static str,
        /// The record size.
        unit: usize,
        /// The length received.
        got: usize,
    },
    /// A 32-byte string is not the canonical encoding of a Ristretto point.
    #[error("{message}: point {index} is not a canonical Ristretto encoding")]
    InvalidPoint {
        /// The message type being decoded.
        message: &'static str,
        /// Index of the point within the message.
        index: usize,
    },
    /// A point is the identity, which would make the OT keys predictable.
    #[error("{message}: point {index} is the identity element")]
    IdentityPoint {
        /// The message type being decoded.
        message: &'static str,
        /// Index of the point within the message.
        index: usize,
    },
    /// A message carries a different number of transfers than this side expects.
    #[error("{what}: expected {expected} transfers, got {got}")]
    CountMismatch {
        /// Which quantity disagrees.
        what: &'static str,
        /// What this side expected.
        expected: usize,
        /// What the message carries.
        got: usize,
    },
    /// A batch is larger than the protocol allows (it bounds memory use on untrusted input).
    #[error("{what}: {got} transfers exceed the maximum of {max}")]
    TooManyTransfers {
        /// Which batch.
        what: &'static str,
        /// Requested size.
        got: usize,
        /// Upper bound.
        max: usize,
    },
    /// Packed bits beyond the announced count are not zero (a non-canonical encoding).
    #[error("{message}: padding bits after the last transfer are not zero")]
    NonZeroPadding {
        /// The message type being decoded.
        message: &'static str,
    },
    /// Two sides disagree on which transfers a message refers to.
    #[error("{what}: expected first transfer index {expected}, got {got}")]
    IndexMismatch {
        /// Which message.
        what: &'static str,
        /// This side's first index.
        expected: u64,
        /// The message's first index.
        got: u64,
    },
    /// An `ExtendMatrix` part that does not fit its batch.
    #[error("ExtendMatrix: a part of {rows} rows from row {first_row} lies outside the batch's {batch_rows} rows")]
    PartOutside {
        /// The part's first row.
        first_row: u64,
        /// Its rows.
        rows: usize,
        /// The batch's extended rows.
        batch_rows: usize,
    },
    /// Parts of one matrix must arrive in order, each where the previous one ended.
    #[error("ExtendMatrix: a part starts at row {got}, expected row {expected}")]
    PartOrder {
        /// Where the next part must start.
        expected: usize,
        /// Where it started.
        got: usize,
    },
    /// The check was asked for before the whole matrix had arrived.
    #[error("ExtendMatrix: {got} of the batch's {rows} rows arrived")]
    Incomplete {
        /// Rows received.
        got: usize,
        /// Rows of the batch.
        rows: usize,
    },
    /// Labels asked for outside the batch.
    #[error("{what}: transfers {start}..{end} requested from a batch of {len}")]
    OutOfRange {
        /// What was asked for.
        what: &'static str,
        /// First transfer.
        start: usize,
        /// End of the range.
        end: usize,
        /// Transfers in the batch.
        len: usize,
    },
    /// The correlated-OT sender was given Δ = 0, which would hand the receiver both messages.
    #[error("the global correlation Δ must be non-zero")]
    ZeroDelta,
    /// The KOS consistency check failed: the receiver's matrix is not consistent with one choice
    /// vector. Abort; never reuse this Δ with the same peer.
    #[error("KOS consistency check failed: receiver deviated (batch of {count} transfers)")]
    ConsistencyCheckFailed {
        /// Size of the rejected batch.
        count: usize,
    },
}
