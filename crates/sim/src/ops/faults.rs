//! Faults armed on operations, consumed one call at a time.

use ferry_protocol::report::driver::DriverError;

use crate::state::{FaultSpec, SimOp, SimState};

/// What an armed fault does to the call that consumed it.
#[derive(Debug)]
pub enum Fault {
    /// The call fails with this error without doing anything.
    Fail(DriverError),
    /// The call never answers.
    Hang,
}

/// Consumes one use of the fault armed on `op`, if any. A fault used up is disarmed; a hang with
/// no count stays armed until the faults are cleared.
pub fn take_fault(state: &mut SimState, op: SimOp, dirty: &mut bool) -> Option<Fault> {
    let spec = state.faults.get_mut(&op)?;
    let (fault, exhausted) = match spec {
        FaultSpec::Fail {
            times,
            kind,
            message,
        } => {
            if *times == 0 {
                (None, true)
            } else {
                *times -= 1;
                let message = message.clone().unwrap_or_else(|| {
                    format!(
                        "injected fault: {op} fails ({} more time(s) after this)",
                        *times
                    )
                });
                (
                    Some(Fault::Fail(DriverError::new(*kind, message))),
                    *times == 0,
                )
            }
        }
        FaultSpec::Hang { times: None } => return Some(Fault::Hang),
        FaultSpec::Hang { times: Some(n) } => {
            if *n == 0 {
                (None, true)
            } else {
                *n -= 1;
                (Some(Fault::Hang), *n == 0)
            }
        }
    };
    if exhausted {
        state.faults.remove(&op);
    }
    *dirty = true;
    fault
}
