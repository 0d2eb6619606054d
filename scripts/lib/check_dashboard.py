"""Checks deploy/grafana/partnergate.json and the metric names of the alert rules.

Run by scripts/check-deploy as: python3 scripts/lib/check_dashboard.py PROMTOOL
(with PyYAML importable). It checks the dashboard's structure (schema version, the
DS_PROMETHEUS input and variable, the route and org variables, unique ids, panels
inside the 24-column grid and not overlapping), that every metric and label in the
dashboard's queries and the alert rules is one the gateway exports, and, through
`promtool check rules`, that every query parses as PromQL.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

DASHBOARD = "deploy/grafana/partnergate.json"
ALERTS = "deploy/prometheus/partnergate-alerts.yml"

# The metrics the dashboard and the alerts may use, with their labels (src/metrics.rs;
# docs/reference.md, Metrics; README, Mail). Histograms also have _bucket, _sum, _count.
METRICS = {
    "partnergate_http_requests_total": {"route", "method", "status", "decision"},
    "partnergate_http_request_duration_seconds": {"route"},
    "partnergate_upstream_request_duration_seconds": {"upstream"},
    "partnergate_upstream_healthy": {"upstream", "addr"},
    "partnergate_policy_denials_total": {"route", "reason"},
    "partnergate_logins_total": {"org", "result", "method"},
    "partnergate_login_lockouts_total": {"kind"},
    "partnergate_users_active": {"window"},
    "partnergate_sessions_active": set(),
    "partnergate_ratelimit_rejections_total": {"route", "key"},
    "partnergate_config_reloads_total": {"result"},
    "partnergate_mail_outbox_depth": set(),
    "partnergate_mail_total": {"kind", "result"},
    "partnergate_forward_auth_requests_total": {"mode", "decision"},
    "partnergate_audit_chain_valid": set(),
    "partnergate_directory_cache_requests_total": {"result"},
    "partnergate_access_log_dropped_total": set(),
}
HISTOGRAMS = {
    "partnergate_http_request_duration_seconds",
    "partnergate_upstream_request_duration_seconds",
}
TARGET_LABELS = {"instance", "job"}  # added by Prometheus to every scraped series
ALERT_ONLY = {"up": set()}  # PartnergateDown

# Grafana's variables, replaced by something PromQL accepts.
SUBST = [
    (r"\$__rate_interval|\$__interval|\$\{__interval\}|\$\{__rate_interval\}", "5m"),
    (r"\$__range|\$\{__range\}", "1h"),
    (r"\$\{?(instance|route|org)\}?", ".*"),
]

errors = []


def err(msg):
    errors.append(msg)


def metric_of(name):
    """The exported family of a series name, or None."""
    if name in METRICS or name in ALERT_ONLY:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)] if name.endswith(suffix) else None
        if base in HISTOGRAMS:
            return base
    return None


def check_names_and_labels(where, expr, allowed):
    names = set(re.findall(r"\bpartnergate_[a-z0-9_]+", expr))
    if allowed is ALERT_ONLY and re.search(r"\bup\{", expr):
        names.add("up")
    families = set()
    for n in names:
        fam = metric_of(n)
        if fam is None:
            err(f"{where}: unknown metric {n}")
        else:
            families.add(fam)
        if n.endswith("_bucket") and "le" not in expr:
            err(f"{where}: {n} without le")
    if not families:
        err(f"{where}: no partnergate metric in {expr!r}")
        return
    labels = set(TARGET_LABELS)
    for fam in families:
        labels |= METRICS.get(fam, ALERT_ONLY.get(fam, set()))
        if fam in HISTOGRAMS:
            labels.add("le")
    used = set()
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        used |= {g.strip() for g in group.split(",") if g.strip()}
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        used |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    for label in sorted(used - labels):
        err(f"{where}: label {label} is not a label of {', '.join(sorted(families))}")


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def check_dashboard():
    with open(DASHBOARD) as f:
        d = json.load(f)
    if d.get("schemaVersion", 0) < 38:
        err(f"{DASHBOARD}: schemaVersion {d.get('schemaVersion')} < 38")
    if not any(i.get("name") == "DS_PROMETHEUS" and i.get("pluginId") == "prometheus"
               for i in d.get("__inputs", [])):
        err(f"{DASHBOARD}: no DS_PROMETHEUS input")
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("DS_PROMETHEUS")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        err(f"{DASHBOARD}: no DS_PROMETHEUS datasource variable")
    queries = []
    for name in ("route", "org"):
        v = variables.get(name)
        q = (v or {}).get("definition", "")
        if not v or v.get("type") != "query" or not q.startswith("label_values("):
            err(f"{DASHBOARD}: variable {name} is not a label_values query")
    for name, v in variables.items():
        if v.get("type") == "query":
            m = re.fullmatch(r"label_values\((.*),\s*([a-z_]+)\)", v.get("definition", ""))
            if not m:
                err(f"{DASHBOARD}: variable {name}: not label_values(SELECTOR, LABEL)")
                continue
            check_names_and_labels(f"variable {name}", f"{m.group(1)} by ({m.group(2)})", METRICS)
            queries.append((f"variable_{name}", m.group(1)))
    ids, cells = set(), {}
    for p in all_panels(d.get("panels", [])):
        title = p.get("title", "?")
        if p.get("id") in ids:
            err(f"{DASHBOARD}: panel id {p.get('id')} twice")
        ids.add(p.get("id"))
        g = p.get("gridPos", {})
        if g.get("x", 0) + g.get("w", 0) > 24 or g.get("w", 0) <= 0 or g.get("h", 0) <= 0:
            err(f"{DASHBOARD}: panel {title!r} outside the grid: {g}")
        for x in range(g.get("x", 0), g.get("x", 0) + g.get("w", 0)):
            for y in range(g.get("y", 0), g.get("y", 0) + g.get("h", 0)):
                if (x, y) in cells:
                    err(f"{DASHBOARD}: panels {cells[(x, y)]!r} and {title!r} overlap")
                    break
                cells[(x, y)] = title
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
            err(f"{DASHBOARD}: panel {title!r} does not use ${{DS_PROMETHEUS}}")
        targets = p.get("targets", [])
        if not targets:
            err(f"{DASHBOARD}: panel {title!r} has no query")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs):
            err(f"{DASHBOARD}: panel {title!r}: refIds repeat")
        for t in targets:
            if t.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
                err(f"{DASHBOARD}: panel {title!r} {t.get('refId')}: not ${{DS_PROMETHEUS}}")
            expr = t.get("expr", "")
            check_names_and_labels(f"panel {title!r} {t.get('refId')}", expr, METRICS)
            queries.append((f"panel_{p['id']}_{t.get('refId')}", expr))
    return queries


def check_alerts():
    with open(ALERTS) as f:
        rules = yaml.safe_load(f)
    for group in rules["groups"]:
        for rule in group["rules"]:
            check_names_and_labels(f"alert {rule['alert']}", rule["expr"], ALERT_ONLY)
            if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
                err(f"alert {rule['alert']}: no severity label")
            ann = rule.get("annotations", {})
            if not ann.get("summary") or not ann.get("description"):
                err(f"alert {rule['alert']}: summary and description are required")


def check_promql(promtool, queries):
    rules = []
    for name, expr in queries:
        for pattern, repl in SUBST:
            expr = re.sub(pattern, repl, expr)
        if "$" in expr:
            err(f"{name}: unreplaced variable in {expr!r}")
        rules.append({"record": f"dashboard:{name}", "expr": expr})
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        path = f.name
    try:
        out = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
        if out.returncode != 0:
            err(f"promtool check rules on the dashboard's queries:\n{out.stdout}{out.stderr}")
    finally:
        os.unlink(path)
    return len(rules)


def main():
    promtool = sys.argv[1] if len(sys.argv) > 1 else "promtool"
    queries = check_dashboard()
    check_alerts()
    n = check_promql(promtool, queries)
    if errors:
        for e in errors:
            print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {DASHBOARD}: {n} queries parse and use known metrics and labels; {ALERTS}: metric names known")


if __name__ == "__main__":
    main()
