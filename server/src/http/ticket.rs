//! Single-use tickets for `EventSource`, which cannot set headers: a browser trades
//! its key for a ticket once, over `POST /api/events/ticket` (the key travels in a
//! header no access log records), then opens the stream with `?ticket=`. A URL that
//! ends up in a proxy's log then holds a token that is already spent, or dead within
//! a minute. This is mcp-memory-service 12's design (`web/sse_ticket.py`).
//!
//! Tickets live in memory only: persisting them would recreate the store of secrets
//! they exist to avoid. The table is bounded, so a client looping on the issuing
//! route costs at most [`MAX_PENDING`] entries.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::auth::Scope;

/// How long a ticket lasts: enough for the browser to open the stream and survive
/// its first automatic reconnect, too short for a logged URL to be worth anything.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// Most tickets outstanding at once, far above any dashboard's number of streams.
pub const MAX_PENDING: usize = 4096;

/// The outstanding tickets. Tokens are 256 random bits, so a lookup by hash map is
/// safe: timing can tell an attacker nothing about a token they cannot guess, and
/// guessing one is hopeless.
#[derive(Debug)]
pub struct Tickets {
    /// Token to the scope of the key that asked for it and when it expires. Locked
    /// only for map operations, never across an `.await`.
    pending: Mutex<HashMap<String, Pending>>,
    /// [`TICKET_TTL`], but for tests of expiry, which cannot wait a minute.
    ttl: Duration,
}

impl Default for Tickets {
    fn default() -> Self {
        Self::with_ttl(TICKET_TTL)
    }
}

#[derive(Debug)]
struct Pending {
    scope: Scope,
    expires: Instant,
}

/// [`MAX_PENDING`] tickets are outstanding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("too many outstanding event-stream tickets; retry in a moment")]
pub struct Saturated;

impl Tickets {
    /// Tickets that last `ttl`.
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            pending: Mutex::default(),
            ttl,
        }
    }

    /// A new ticket carrying `scope`, valid for [`TICKET_TTL`].
    pub fn issue(&self, scope: Scope) -> Result<String, Saturated> {
        self.issue_at(scope, Instant::now())
    }

    fn issue_at(&self, scope: Scope, now: Instant) -> Result<String, Saturated> {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        // Purge, check and insert under one lock, so two callers cannot both pass
        // the bound.
        pending.retain(|_, ticket| ticket.expires > now);
        if pending.len() >= MAX_PENDING {
            return Err(Saturated);
        }
        let expires = now + self.ttl;
        pending.insert(token.clone(), Pending { scope, expires });
        Ok(token)
    }

    /// Spends `token`: the scope it carries, or `None` if it is unknown, already
    /// used or expired.
    pub fn redeem(&self, token: &str) -> Option<Scope> {
        self.redeem_at(token, Instant::now())
    }

    fn redeem_at(&self, token: &str, now: Instant) -> Option<Scope> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let ticket = pending.remove(token)?;
        (ticket.expires > now).then_some(ticket.scope)
    }

    /// How many tickets are outstanding at `now` (expired ones not counted).
    #[cfg(test)]
    fn outstanding_at(&self, now: Instant) -> usize {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.values().filter(|t| t.expires > now).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ticket works once, with the scope it was issued for.
    #[test]
    fn a_ticket_is_single_use() {
        let tickets = Tickets::default();
        let token = tickets.issue(Scope::Write).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(tickets.redeem(&token), Some(Scope::Write));
        assert_eq!(tickets.redeem(&token), None);
        assert_eq!(tickets.redeem("not-a-ticket"), None);
    }

    /// A ticket presented after [`TICKET_TTL`] is refused, and spent all the same.
    #[test]
    fn a_ticket_expires() {
        let tickets = Tickets::default();
        let issued = Instant::now();
        let late = tickets.issue_at(Scope::Read, issued).unwrap();
        let in_time = tickets.issue_at(Scope::Read, issued).unwrap();
        let just_before = issued + TICKET_TTL - Duration::from_millis(1);
        assert_eq!(tickets.redeem_at(&in_time, just_before), Some(Scope::Read));
        assert_eq!(tickets.redeem_at(&late, issued + TICKET_TTL), None);
        assert_eq!(tickets.outstanding_at(issued), 0);
    }

    /// The table holds at most [`MAX_PENDING`] live tickets; expired ones make room.
    #[test]
    fn outstanding_tickets_are_bounded() {
        let tickets = Tickets::default();
        let issued = Instant::now();
        for _ in 0..MAX_PENDING {
            tickets.issue_at(Scope::Read, issued).unwrap();
        }
        assert_eq!(tickets.issue_at(Scope::Read, issued), Err(Saturated));
        let later = issued + TICKET_TTL;
        assert!(tickets.issue_at(Scope::Read, later).is_ok());
        assert_eq!(tickets.outstanding_at(later), 1);
    }
}
