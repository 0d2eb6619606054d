//! The text form of an [`Explanation`]: what an operator reads in a terminal.

use std::fmt::Write;

use super::view::{Explanation, IdentityView, RateLimitView};

/// Render `e` as text, ending with a newline.
pub fn render(e: &Explanation) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_all(&mut out, e);
    out
}

fn write_all(out: &mut String, e: &Explanation) -> std::fmt::Result {
    let r = &e.request;
    writeln!(out, "{} {}", r.method, r.url)?;
    write!(out, "  host {}, path {}", r.host, r.path)?;
    if let Some(q) = &r.query {
        write!(out, ", query {q}")?;
    }
    writeln!(out)?;
    match &r.user {
        Some(user) => writeln!(out, "  user {user}")?,
        None => writeln!(out, "  no --user: a request without credentials")?,
    }
    writeln!(out, "  at {}", r.now)?;
    writeln!(out)?;

    if e.reserved {
        writeln!(
            out,
            "reserved path: served by the gateway itself, not routed"
        )?;
    } else {
        writeln!(out, "routes (file order, the first match wins):")?;
        let width = e.routes.iter().map(|l| l.name.len()).max().unwrap_or(0);
        for line in &e.routes {
            let mark = if line.matched { "=>" } else { "  " };
            writeln!(
                out,
                "  {mark} #{:<2} {:<width$}  {}",
                line.index, line.name, line.why
            )?;
        }
        if e.routes.is_empty() {
            writeln!(out, "  (no routes configured)")?;
        }
        if let Some(route) = &e.route {
            let matched = if route.matched {
                "route"
            } else {
                "route (host and path only)"
            };
            write!(
                out,
                "{matched} {}: upstream {}, auth = {}, mode = {}",
                route.name, route.upstream, route.auth, route.mode
            )?;
            if let Some(account) = &route.account {
                write!(out, ", account {account}")?;
            }
            let ws = if route.websocket {
                "allowed (websocket = true)"
            } else {
                "refused with 403 (websocket = false)"
            };
            writeln!(out, "; WebSocket upgrades {ws}")?;
        }
    }
    writeln!(out)?;

    match &e.identity {
        Some(id) => write_identity(out, id)?,
        None => match &r.user {
            Some(user) => writeln!(out, "identity: none (no user {user:?} in the directory)")?,
            None => writeln!(out, "identity: none (no --user)")?,
        },
    }

    if !e.rules.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "rules (in the order the gateway checks them; all evaluated, the first failure decides):"
        )?;
        let width = e.rules.iter().map(|l| l.rule.len()).max().unwrap_or(0);
        for rule in &e.rules {
            let outcome = match rule.outcome {
                "fail" => "FAIL",
                other => other,
            };
            let decisive = if rule.decisive { "   <= decides" } else { "" };
            writeln!(
                out,
                "  {:<width$}  {outcome:<4}  {}{decisive}",
                rule.rule, rule.detail
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "decision: {}", decision_line(e))?;

    writeln!(out)?;
    if e.rate_limits.is_empty() {
        writeln!(out, "rate limits: none")?;
    } else {
        writeln!(out, "rate limits (over a limit: 429 with Retry-After):")?;
        for limit in &e.rate_limits {
            writeln!(out, "  {}", rate_line(limit))?;
        }
    }
    if !e.notes.is_empty() {
        writeln!(out)?;
        writeln!(out, "notes:")?;
        for note in &e.notes {
            writeln!(out, "  - {note}")?;
        }
    }
    Ok(())
}

fn write_identity(out: &mut String, id: &IdentityView) -> std::fmt::Result {
    writeln!(out, "identity (read from the directory now):")?;
    writeln!(
        out,
        "  user {} (id {}), {}",
        id.email, id.user_id, id.status
    )?;
    writeln!(
        out,
        "  org {} ({:?}), type {}, {}",
        id.org.id, id.org.name, id.org.org_type, id.org.status
    )?;
    if id.owner_admin {
        writeln!(
            out,
            "  owner admin (org type = server.owner_org_type): no bypass, the route's rules apply as to anyone"
        )?;
    } else {
        writeln!(out, "  not an owner admin")?;
    }
    writeln!(out, "  roles: {}", or_none(&id.roles.join(", ")))?;
    writeln!(
        out,
        "  permissions: {}",
        or_none(&id.permissions.join(", "))
    )?;
    let grants: Vec<String> = id
        .grants
        .iter()
        .map(|g| match (&g.expires_at, g.expired) {
            (Some(t), true) => format!("{} {} (EXPIRED {t})", g.account, g.level),
            (Some(t), false) => format!("{} {} (until {t})", g.account, g.level),
            (None, _) => format!("{} {}", g.account, g.level),
        })
        .collect();
    writeln!(out, "  grants: {}", or_none(&grants.join("; ")))
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "(none)"
    } else {
        s
    }
}

fn decision_line(e: &Explanation) -> String {
    if e.reserved {
        return "served by the gateway itself (reserved path); no route policy".into();
    }
    let mut line = e.decision.to_string();
    if let Some(reason) = e.reason {
        line.push_str(&format!(" (reason {reason})"));
    }
    if let Some(rule) = e.decided_by {
        line.push_str(&format!(", decided by {rule}"));
    }
    match (e.decision, e.status) {
        ("shadow_deny", _) => line.push_str(&format!(
            " → let through anyway (mode = shadow), forwarded to upstream {}",
            e.upstream.as_deref().unwrap_or("?")
        )),
        (_, Some(200)) => line.push_str(&format!(
            " → forwarded to upstream {} (the client gets its answer)",
            e.upstream.as_deref().unwrap_or("?")
        )),
        (_, Some(status)) => {
            line.push_str(&format!(" → {status}"));
            if e.browser_status == Some(302) {
                line.push_str(" (a browser GET accepting text/html: 302 to the login page)");
            }
        }
        (_, None) => {}
    }
    line
}

fn rate_line(limit: &RateLimitView) -> String {
    let scope = match limit.scope {
        "global" => "global per-IP limit (server.rate_limit_per_ip)",
        "login" => "login limit (login.rate_limit_per_ip)",
        _ => "route limit",
    };
    let sharing = if limit.shared {
        let fallback = match limit.on_redis_error {
            "deny" => "refuse with 503",
            _ => "this instance's own buckets",
        };
        format!("shared by every instance through Redis; if Redis cannot answer: {fallback}")
    } else {
        "kept by each instance on its own (no [redis])".to_string()
    };
    format!(
        "{scope}: {}/s, burst {}, {}; {sharing}",
        number(limit.per_second),
        limit.burst,
        limit.bucket
    )
}

/// `200` rather than `200.0`; fractions as given.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}
