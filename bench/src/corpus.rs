//! Deterministic short sentences for `bridge-bench` and `embed-bench`: varied enough
//! that no two texts are alike, reproducible run to run. `mnemo-bench` measures on
//! real text instead ([`crate::realtext`]).

const SUBJECTS: [&str; 16] = [
    "The deploy script",
    "My sister's cat",
    "The quarterly report",
    "Our staging database",
    "The espresso machine",
    "A flaky integration test",
    "The garden irrigation timer",
    "The conference keynote",
    "The new hire's laptop",
    "Our backup rotation",
    "The kitchen renovation",
    "The team offsite",
    "The billing export",
    "My running shoes",
    "The VPN certificate",
    "The dentist appointment",
];

const PREDICATES: [&str; 16] = [
    "needs to be checked before Friday",
    "stopped working after the last update",
    "was moved to the shared drive",
    "should be reviewed with the whole team",
    "keeps running out of disk space",
    "reminds me of the trip to Lisbon",
    "is documented in the onboarding wiki",
    "costs more than we planned",
    "was rescheduled to next month",
    "broke again during the night",
    "has a new owner since March",
    "needs a second opinion",
    "is waiting for approval",
    "was cheaper than expected",
    "got a five star review",
    "is blocked on legal",
];

/// The `i`-th sentence; distinct for every `i`.
pub fn sentence(i: usize) -> String {
    let subject = SUBJECTS[i % SUBJECTS.len()];
    let predicate = PREDICATES[(i / SUBJECTS.len()) % PREDICATES.len()];
    format!("{subject} {predicate} (note {i}).")
}

/// A question about the `i`-th subject and predicate, for search load.
pub fn question(i: usize) -> String {
    let subject = SUBJECTS[(i * 7) % SUBJECTS.len()];
    let predicate = PREDICATES[i % PREDICATES.len()];
    format!("what {predicate}: {subject}?")
}
