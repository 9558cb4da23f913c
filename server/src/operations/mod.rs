//! The operations: one function per thing a client can ask of Mnemo, shared by the
//! REST handlers and the tools at `/mcp`.
//!
//! An operation takes the wire request of `mnemo_api::rest` and the [`Caller`], and
//! returns the wire response or an [`OpError`]. It holds what is the same whatever
//! the transport: validation and defaults, the `agent:` tag, time phrases turned into
//! filters, sessions, batches and delete-by-filter. The transports only extract the
//! request and shape the answer, so a tool call and the REST request it mirrors
//! cannot drift apart.
//!
//! * [`memories`]: store (one, a batch, an import, a session), list, get, update,
//!   delete one, delete by filter.
//! * [`search`]: semantic, hybrid and exact search, by tag, by time.
//! * [`catalog`]: the tags and types in use.
//! * [`health`]: the detailed health report.
//! * [`stats`]: memories stored per day, for charts.
//! * [`export`] and [`import`]: every memory out as JSON Lines, and back in, a
//!   report per line.
//! * [`backups`]: backups into `<data dir>/backups`, on demand and on a schedule, and
//!   restores from them while serving or offline.

pub mod backups;
pub mod catalog;
pub mod export;
pub mod health;
pub mod import;
pub mod memories;
pub mod search;
pub mod stats;

use thiserror::Error;

use crate::auth::Scope;
use crate::service::ServiceError;
use crate::timeexpr::TimeExprError;

/// Who is asking: what their key may do, and the agent they speak for.
///
/// Both transports build it from the request (the scope the key was granted, the
/// `X-Agent-ID` header) and pass it in, so an operation never guesses its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub scope: Scope,
    /// From `X-Agent-ID`: stored memories get the tag `agent:<id>`.
    pub agent: Option<String>,
}

impl Caller {
    pub fn new(scope: Scope, agent: Option<&str>) -> Self {
        let agent = agent
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned);
        Self { scope, agent }
    }

    /// Refuses an operation that needs more than the caller's scope. The transports
    /// check the scope first; this keeps an operation safe whoever calls it.
    pub fn require(&self, needs: Scope) -> Result<(), OpError> {
        if self.scope.allows(needs) {
            Ok(())
        } else {
            Err(OpError::Forbidden {
                has: self.scope,
                needs,
            })
        }
    }

    /// The `agent:<id>` tag this caller's memories get.
    fn agent_tag(&self) -> Option<String> {
        self.agent.as_ref().map(|agent| format!("agent:{agent}"))
    }
}

/// Why an operation failed. Each transport turns it into its own answer (an HTTP
/// status and the JSON error body, or an MCP tool error).
#[derive(Debug, Error)]
pub enum OpError {
    /// The request is wrong in a way only the operation can see: an empty query, an
    /// unknown time phrase, too many items.
    #[error("{0}")]
    BadRequest(String),
    #[error("this key has the {has} scope; this operation needs {needs}")]
    Forbidden { has: Scope, needs: Scope },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl OpError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }
}

impl From<TimeExprError> for OpError {
    fn from(error: TimeExprError) -> Self {
        Self::BadRequest(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blank agent id is no agent; the scope check compares, it does not match.
    #[test]
    fn caller_rules() {
        assert_eq!(Caller::new(Scope::Read, Some("  ")).agent, None);
        let caller = Caller::new(Scope::Write, Some(" claude "));
        assert_eq!(caller.agent_tag().as_deref(), Some("agent:claude"));
        assert!(caller.require(Scope::Read).is_ok());
        assert!(matches!(
            caller.require(Scope::Admin),
            Err(OpError::Forbidden {
                has: Scope::Write,
                needs: Scope::Admin
            })
        ));
    }
}
