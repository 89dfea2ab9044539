//! Exit codes, the same for every verb so that a pipeline needs one rule:
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done |
//! | 1 | what was asked for ran and failed: a failed discovery or job, a validation whose verdict is `fail`, a plan with failing checks, a server error |
//! | 2 | refused or bad arguments: a usage error, a missing token, any 4xx answer (unknown cluster, a viewer doing an operator's verb, a conflict) |
//! | 3 | the server could not be reached, or said it is unavailable (502, 503, 504): worth a retry later |

use crate::client::ClientError;

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_REFUSED: u8 = 2;
pub const EXIT_UNREACHABLE: u8 = 3;

/// Why a verb did not succeed, and the exit code that says so.
#[derive(Debug)]
pub struct Failure {
    pub error: anyhow::Error,
    pub exit_code: u8,
}

/// Bad arguments, configuration, or a request refused: exit 2.
pub fn usage(error: anyhow::Error) -> Failure {
    Failure {
        error,
        exit_code: EXIT_REFUSED,
    }
}

/// What was asked for ran and failed: exit 1.
pub fn failed(error: anyhow::Error) -> Failure {
    Failure {
        error,
        exit_code: EXIT_FAILED,
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let exit_code = match &e {
            ClientError::Api { status, .. } if status.is_client_error() => EXIT_REFUSED,
            ClientError::Api { status, .. } if matches!(status.as_u16(), 502..=504) => {
                EXIT_UNREACHABLE
            }
            ClientError::Api { .. } | ClientError::BadAnswer(_) => EXIT_FAILED,
            ClientError::Unreachable(_) => EXIT_UNREACHABLE,
            ClientError::BadRequest(_) => EXIT_REFUSED,
        };
        Failure {
            error: anyhow::anyhow!("{e}"),
            exit_code,
        }
    }
}
