use super::*;

fn entry() -> AuditEntry {
    AuditEntry {
        actor_email: Some("bob@acme.example".into()),
        ip: Some("192.0.2.9".into()),
        request_id: Some("req-1".into()),
        target: Some("user:u-1".into()),
        org_id: Some("acme".into()),
        reason: Some("bad_credentials".into()),
        after: Some(serde_json::json!({"failed_logins": 1})),
        ..AuditEntry::new("u-1", ACTION_LOGIN_FAILURE, AuditOutcome::Denied)
    }
}

/// A chain of `n` records as `append_audit_in` writes them.
fn chain(n: i64) -> Vec<AuditRow> {
    let mut rows: Vec<AuditRow> = Vec::new();
    for seq in 1..=n {
        let prev = rows
            .last()
            .map_or(ZERO_HASH.to_string(), |r| r.hash.clone());
        rows.push(AuditRow::chained(seq, 1_000 + seq, &entry(), prev));
    }
    rows
}

fn head_of(rows: &[AuditRow]) -> Option<(i64, String)> {
    let last = rows.last()?;
    Some((last.seq, last.hash.clone()))
}

fn verify(rows: &[AuditRow], head: Option<(i64, String)>) -> AuditVerification {
    let mut check = ChainCheck::default();
    rows.iter().for_each(|r| check.push(r));
    check.finish(head)
}

#[test]
fn the_hash_encoding_is_pinned() {
    // Computed independently from the encoding in the module docs; a change here breaks
    // every existing log's verification.
    let row = AuditRow::chained(1, 1_900_000_000, &entry(), ZERO_HASH.to_string());
    assert_eq!(
        row.hash,
        "ab5e47de1cd6afc00d34f80e25f079ef3300f5f502149601e4288a3d957e8086"
    );
    assert_eq!(row.after.as_deref(), Some(r#"{"failed_logins":1}"#));
}

#[test]
fn fields_are_unambiguous() {
    let hash = |e: &AuditEntry| AuditRow::chained(1, 1, e, ZERO_HASH.into()).hash;
    let ab_c = AuditEntry {
        target: Some("c".into()),
        ..AuditEntry::new("ab", "x", AuditOutcome::Ok)
    };
    let a_bc = AuditEntry {
        target: Some("bc".into()),
        ..AuditEntry::new("a", "x", AuditOutcome::Ok)
    };
    assert_ne!(hash(&ab_c), hash(&a_bc));
    let null = AuditEntry::new("a", "x", AuditOutcome::Ok);
    let empty = AuditEntry {
        reason: Some(String::new()),
        ..null.clone()
    };
    assert_ne!(hash(&null), hash(&empty));
    // Moving a value from one optional field to the next changes the hash too.
    let in_ip = AuditEntry {
        ip: Some("v".into()),
        ..null.clone()
    };
    let in_request = AuditEntry {
        request_id: Some("v".into()),
        ..null
    };
    assert_ne!(hash(&in_ip), hash(&in_request));
}

#[test]
fn rows_round_trip_to_records() {
    let row = AuditRow::chained(7, 50, &entry(), ZERO_HASH.into());
    let record = row.clone().into_record().expect("record");
    assert_eq!((record.seq, record.ts), (7, 50));
    assert_eq!(record.entry, entry());
    assert_eq!(record.hash, row.hash);
    let corrupt = AuditRow {
        outcome: "maybe".into(),
        ..row
    };
    assert!(corrupt.into_record().is_err());
}

#[test]
fn an_intact_chain_verifies() {
    let rows = chain(5);
    let v = verify(&rows, head_of(&rows));
    assert_eq!(v.first_problem, None);
    assert_eq!((v.records, v.head_seq), (5, Some(5)));
    let empty = verify(&[], Some((0, ZERO_HASH.into())));
    assert!(empty.is_intact());
}

#[test]
fn tampering_is_reported_at_the_first_broken_seq() {
    type Tamper = fn(&mut Vec<AuditRow>, &mut Option<(i64, String)>);
    let cases: [(&str, Tamper, i64, &str); 8] = [
        (
            "edited",
            |rows, _| rows[2].after = Some("{}".into()),
            3,
            "hash does not match its contents (edited)",
        ),
        (
            "deleted",
            |rows, _| {
                rows.remove(1);
            },
            2,
            "seq 2 missing (deleted)",
        ),
        (
            "several deleted",
            |rows, _| {
                rows.drain(1..3);
            },
            2,
            "seq 2 to 3 missing (deleted)",
        ),
        (
            "edited and re-hashed",
            |rows, _| {
                rows[1].reason = Some("ok".into());
                rows[1].hash = rows[1].content_hash();
            },
            3,
            "prev_hash does not link to seq 2",
        ),
        (
            "newest deleted",
            |rows, _| rows.truncate(3),
            4,
            "head says seq 5 but the log ends at 3 (newest records deleted)",
        ),
        (
            "head gone",
            |_, head| *head = None,
            6,
            "the audit head is missing (deleted)",
        ),
        (
            "planted before the chain",
            |rows, _| {
                let planted = AuditRow::chained(0, 1, &entry(), ZERO_HASH.into());
                rows.insert(0, planted);
            },
            0,
            "seq 0 is outside the chain, which starts at 1 (inserted)",
        ),
        (
            "appended past the head",
            |rows, _| {
                let prev = rows[4].hash.clone();
                rows.push(AuditRow::chained(6, 9, &entry(), prev));
            },
            6,
            "the log goes on to seq 6 past the head's seq 5 (records added outside the chain)",
        ),
    ];
    for (name, tamper, seq, problem) in cases {
        let mut rows = chain(5);
        let mut head = head_of(&rows);
        tamper(&mut rows, &mut head);
        let v = verify(&rows, head);
        let found = v.first_problem.expect(name);
        assert_eq!(
            (found.seq, found.problem.as_str()),
            (seq, problem),
            "{name}"
        );
        assert_eq!(v.records, rows.len() as u64, "{name}: every row is counted");
    }
}

#[test]
fn a_head_with_another_hash_is_reported() {
    let rows = chain(3);
    let v = verify(&rows, Some((3, ZERO_HASH.into())));
    let problem = v.first_problem.expect("problem");
    assert_eq!(problem.seq, 3);
    assert_eq!(problem.problem, "head hash does not match seq 3 (edited)");
}

#[test]
fn a_first_record_not_chained_to_zero_is_reported() {
    let rows = vec![AuditRow::chained(1, 1, &entry(), "f".repeat(64))];
    let v = verify(&rows, head_of(&rows));
    let problem = v.first_problem.expect("problem");
    assert_eq!(
        (problem.seq, problem.problem.as_str()),
        (1, "prev_hash of the first record is not the zero hash")
    );
}

#[test]
fn filter_limits_are_capped() {
    let limit = |l| {
        AuditFilter {
            limit: l,
            ..AuditFilter::default()
        }
        .effective_limit()
    };
    assert_eq!(limit(None), 100);
    assert_eq!(limit(Some(5)), 5);
    assert_eq!(limit(Some(50_000)), 1000);
}
