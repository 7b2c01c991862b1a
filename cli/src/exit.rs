//! Exit statuses (documented in `cryptonas --help` and the README): which error means what.

use cryptonas_client::{Refused, SessionFailed};
use cryptonas_protocol::{ErrorCode, ProtocolError};

pub(crate) use cryptonas_client::cli::CheckFailed;

/// 1: any error not named below.
const ERROR: u8 = 1;
/// 3: the server refused (an HTTP status instead of a session or an answer).
const REFUSED: u8 = 3;
/// 4: client and server speak different protocol versions.
const VERSION: u8 = 4;
/// 5: a check the user asked for disagreed, or import found an unsupported model.
const CHECK_FAILED: u8 = 5;
/// 6: the command needs a cargo feature this binary was built without.
const NOT_BUILT: u8 = 6;

/// The exit status for `e`: the first cause in its chain that has a status of its own.
pub(crate) fn code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<Refused>() {
            return REFUSED;
        }
        if let Some(s) = cause.downcast_ref::<SessionFailed>() {
            if s.is_version_mismatch() {
                return VERSION;
            }
        }
        if let Some(
            ProtocolError::Version { .. }
            | ProtocolError::Peer {
                code: ErrorCode::Version,
                ..
            },
        ) = cause.downcast_ref::<ProtocolError>()
        {
            return VERSION;
        }
        if cause.is::<CheckFailed>() {
            return CHECK_FAILED;
        }
        if cause.is::<cryptonas_search::cli::NeedsTch>() {
            return NOT_BUILT;
        }
    }
    ERROR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_kind_has_its_status() {
        let refused = Refused {
            url: "ws://127.0.0.1:1/api/session/x".into(),
            status: 503,
            reason: "busy".into(),
            retry_after: Some("2".into()),
        };
        assert_eq!(code(&refused.into()), REFUSED);
        let version = SessionFailed(ProtocolError::Version { ours: 3, theirs: 2 });
        assert_eq!(code(&version.into()), VERSION);
        let peer = SessionFailed(ProtocolError::Peer {
            code: ErrorCode::Version,
            message: "v9".into(),
        });
        assert_eq!(code(&anyhow::Error::new(peer).context("classify")), VERSION);
        let other = SessionFailed(ProtocolError::Check("bad".into()));
        assert_eq!(code(&other.into()), ERROR);
        assert_eq!(code(&CheckFailed("differs".into()).into()), CHECK_FAILED);
        let tch = cryptonas_search::cli::NeedsTch { command: "train" };
        assert_eq!(code(&tch.into()), NOT_BUILT);
        assert_eq!(code(&anyhow::anyhow!("cannot read x")), ERROR);
    }
}
