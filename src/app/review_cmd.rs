//! `partnergate review [--json | --csv]`: the access review of every user.
//! A table by default (sorted by org, then email), a JSON array, or CSV with a header row.
//! Exit 0 success, 1 directory unreadable, 2 invalid configuration.

use std::path::Path;
use std::process::ExitCode;

use crate::directory::{ReviewParams, ReviewRow, Timestamp};

use super::audit_cmd::open;
use super::directory_cmd::{load_config, runtime};
use super::services::redact;

/// The CSV columns, in order.
const CSV_HEADER: [&str; 16] = [
    "org",
    "org_type",
    "org_status",
    "email",
    "user_id",
    "status",
    "roles",
    "grants",
    "last_login_at",
    "last_seen_at",
    "created_at",
    "inactive",
    "never_logged_in",
    "expired_grant",
    "admin",
    "suspended",
];

pub fn run(config_path: &Path, json: bool, csv: bool) -> ExitCode {
    let load = || -> Result<Vec<ReviewRow>, ExitCode> {
        let config = load_config(config_path)?;
        let rt = runtime()?;
        rt.block_on(async {
            // The directory as it is: a review does not migrate it nor create a database.
            let store = open(&config.directory).await?;
            let params = ReviewParams::new(
                crate::clock::system().now(),
                config.lifecycle.inactive_after,
                &config.server.owner_org_type,
            );
            store.review(&params).await.map_err(|e| {
                eprintln!("error: directory {}: {e}", redact(&config.directory.url));
                ExitCode::from(1)
            })
        })
    };
    let rows = match load() {
        Ok(rows) => rows,
        Err(code) => return code,
    };
    let out = if json {
        render_json(&rows)
    } else if csv {
        render_csv(&rows)
    } else {
        render_text(&rows)
    };
    print!("{out}");
    ExitCode::SUCCESS
}

fn render_json(rows: &[ReviewRow]) -> String {
    let all: Vec<serde_json::Value> = rows.iter().map(ReviewRow::to_json).collect();
    format!("{}\n", serde_json::Value::Array(all))
}

/// `2026-01-31T00:00:00Z`; the raw number if it is out of range.
fn time_text(ts: Timestamp) -> String {
    crate::clock::rfc3339(ts).unwrap_or_else(|| ts.to_string())
}

fn optional_time(ts: Option<Timestamp>, none: &str) -> String {
    ts.map_or_else(|| none.to_string(), time_text)
}

/// `client-42:view`, `client-90:admin until 2027-06-30T00:00:00Z`,
/// `client-90:standard until 2026-01-31T00:00:00Z (expired)`; joined by `; `.
fn grants_text(row: &ReviewRow) -> String {
    let grants = row.grants.iter().map(|g| {
        let mut s = format!("{}:{}", g.account, g.level.as_str());
        if let Some(t) = g.expires_at {
            s.push_str(&format!(" until {}", time_text(t)));
        }
        if g.expired {
            s.push_str(" (expired)");
        }
        s
    });
    grants.collect::<Vec<_>>().join("; ")
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote, CR or LF; quotes doubled.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_line(fields: &[String]) -> String {
    let fields: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    format!("{}\r\n", fields.join(","))
}

fn render_csv(rows: &[ReviewRow]) -> String {
    let header: Vec<String> = CSV_HEADER.iter().map(|h| h.to_string()).collect();
    let mut out = csv_line(&header);
    for r in rows {
        let f = r.flags;
        let fields = [
            r.org_id.clone(),
            r.org_type.clone(),
            r.org_status.as_str().to_string(),
            r.email.clone(),
            r.user_id.clone(),
            r.status.as_str().to_string(),
            r.roles.join(";"),
            grants_text(r),
            optional_time(r.last_login_at, ""),
            optional_time(r.last_seen_at, ""),
            time_text(r.created_at),
            f.inactive.to_string(),
            f.never_logged_in.to_string(),
            f.expired_grant.to_string(),
            f.admin.to_string(),
            f.suspended.to_string(),
        ];
        out.push_str(&csv_line(&fields));
    }
    out
}

fn render_text(rows: &[ReviewRow]) -> String {
    let header = [
        "ORG",
        "EMAIL",
        "STATUS",
        "ROLES",
        "GRANTS",
        "LAST LOGIN",
        "LAST REQUEST",
        "FLAGS",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in rows {
        let status = match r.org_status.as_str() {
            "active" => r.status.as_str().to_string(),
            org => format!("{} (org {org})", r.status.as_str()),
        };
        let flags = r.flag_names().join(",");
        table.push(vec![
            r.org_id.clone(),
            r.email.clone(),
            status,
            or_dash(r.roles.join(",")),
            or_dash(grants_text(r)),
            optional_time(r.last_login_at, "never"),
            optional_time(r.last_seen_at, "never"),
            or_dash(flags),
        ]);
    }
    let mut widths = vec![0; header.len()];
    for line in &table {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &table {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!("{} user(s)\n", rows.len()));
    out
}

fn or_dash(s: String) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{
        AccountLevel, OrgStatus, ReviewFlags, ReviewGrant, ReviewParams, UserStatus,
    };

    fn row() -> ReviewRow {
        let mut r = ReviewRow {
            user_id: "u-1".into(),
            email: "a\"b,c@x.example".into(),
            org_id: "acme".into(),
            org_type: "reseller".into(),
            org_status: OrgStatus::Active,
            status: UserStatus::Active,
            roles: vec!["partner-admin".into(), "partner-user".into()],
            grants: vec![
                ReviewGrant {
                    account: "client-42".into(),
                    level: AccountLevel::View,
                    expires_at: None,
                    expired: false,
                },
                ReviewGrant {
                    account: "client-90".into(),
                    level: AccountLevel::Standard,
                    expires_at: Some(1_769_817_600),
                    expired: false,
                },
            ],
            last_login_at: None,
            last_seen_at: Some(1_769_817_600),
            created_at: 0,
            flags: ReviewFlags::default(),
        };
        let params = ReviewParams {
            now: 1_800_000_000,
            inactive_after: 90 * 86_400,
            owner_org_type: "owner".into(),
        };
        r.finish(&params, &["partner-admin".to_string()]);
        r
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\r"), "\"cr\r\"");
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_user() {
        let out = render_csv(&[row()]);
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(lines[0], CSV_HEADER.join(","));
        assert_eq!(
            lines[1],
            "acme,reseller,active,\"a\"\"b,c@x.example\",u-1,active,partner-admin;partner-user,\
             client-42:view; client-90:standard until 2026-01-31T00:00:00Z (expired),,\
             2026-01-31T00:00:00Z,1970-01-01T00:00:00Z,true,true,true,true,false"
        );
        assert_eq!(lines[2], "");
    }

    #[test]
    fn text_table_lists_flags() {
        let out = render_text(&[row()]);
        let mut lines = out.lines();
        assert!(lines.next().is_some_and(|l| l.starts_with("ORG")), "{out}");
        let line = lines.next().unwrap_or_default();
        assert!(line.starts_with("acme"), "{out}");
        assert!(
            line.ends_with("inactive,never_logged_in,expired_grant,admin"),
            "{out}"
        );
        assert!(out.ends_with("1 user(s)\n"), "{out}");
    }
}
