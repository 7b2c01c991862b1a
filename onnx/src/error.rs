//! Import errors: each names the ONNX node (or tensor) and says what to do about it.

/// Why an import failed as a whole (per-node problems are collected in the
/// [`Report`](crate::Report) instead).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is larger than the importer accepts.
    #[error("{what} is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Not a protobuf `ModelProto` (or truncated).
    #[error("not a valid ONNX model (protobuf decoding failed: {detail}); is the file complete?")]
    Malformed {
        /// The decoder's message.
        detail: String,
    },
    /// Something about the model as a whole.
    #[error("{0}")]
    Model(String),
    /// One or more nodes cannot be imported; the report says which and why.
    #[error("{count} node(s) cannot be imported; first: {first}")]
    Unsupported {
        /// How many nodes failed.
        count: usize,
        /// The first failure, `node 'name' (Op): reason`.
        first: String,
    },
    /// The converted model failed the model crate's validation.
    #[error("the converted model is invalid: {0}")]
    Invalid(#[from] cryptonas_model::ModelError),
    /// Reading or writing files.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}
