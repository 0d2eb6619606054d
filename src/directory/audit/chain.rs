//! Checking the chain: seq contiguity from 1, each record's hash, the links, the head.

use super::{AuditProblem, AuditRow, AuditVerification, ZERO_HASH};

/// Walks the log in seq order (fed page by page) and keeps the first problem found.
#[derive(Debug)]
pub(crate) struct ChainCheck {
    records: u64,
    /// The seq the next row should have.
    expected: i64,
    prev_hash: String,
    problem: Option<AuditProblem>,
}

impl Default for ChainCheck {
    fn default() -> Self {
        ChainCheck {
            records: 0,
            expected: 1,
            prev_hash: ZERO_HASH.to_string(),
            problem: None,
        }
    }
}

impl ChainCheck {
    /// Check the next row; after the first problem rows are only counted.
    pub fn push(&mut self, row: &AuditRow) {
        self.records += 1;
        if self.problem.is_some() {
            return;
        }
        self.problem = self.check(row);
        self.expected = row.seq.saturating_add(1);
        self.prev_hash.clone_from(&row.hash);
    }

    fn check(&self, row: &AuditRow) -> Option<AuditProblem> {
        let expected = self.expected;
        if row.seq > expected {
            let missing = if row.seq == expected + 1 {
                format!("seq {expected} missing (deleted)")
            } else {
                format!("seq {expected} to {} missing (deleted)", row.seq - 1)
            };
            return problem(expected, missing);
        }
        if row.seq < expected {
            let text = format!(
                "seq {} is outside the chain, which starts at 1 (inserted)",
                row.seq
            );
            return problem(row.seq, text);
        }
        if row.content_hash() != row.hash {
            return problem(row.seq, "hash does not match its contents (edited)".into());
        }
        if row.prev_hash != self.prev_hash {
            let text = match row.seq {
                1 => "prev_hash of the first record is not the zero hash".to_string(),
                n => format!("prev_hash does not link to seq {}", n - 1),
            };
            return problem(row.seq, text);
        }
        None
    }

    /// The verdict once every row is in, checked against the head `(seq, hash)`.
    pub fn finish(self, head: Option<(i64, String)>) -> AuditVerification {
        let last = self.expected - 1;
        let problem = self.problem.or_else(|| match &head {
            None => problem(last + 1, "the audit head is missing (deleted)".into()),
            Some((seq, _)) if *seq > last => problem(
                last + 1,
                format!("head says seq {seq} but the log ends at {last} (newest records deleted)"),
            ),
            Some((seq, _)) if *seq < last => problem(
                seq + 1,
                format!(
                    "the log goes on to seq {last} past the head's seq {seq} \
                     (records added outside the chain)"
                ),
            ),
            Some((_, hash)) if *hash != self.prev_hash => problem(
                last,
                format!("head hash does not match seq {last} (edited)"),
            ),
            Some(_) => None,
        });
        AuditVerification {
            records: self.records,
            head_seq: head.map(|(seq, _)| seq),
            first_problem: problem,
        }
    }
}

fn problem(seq: i64, problem: String) -> Option<AuditProblem> {
    Some(AuditProblem { seq, problem })
}
