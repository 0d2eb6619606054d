//! Usage data in the store: flushes add into the same rows (across instances), the summed
//! read filters by day, org and user, the report's totals, and pruning.

use super::*;
use crate::usage::{usage_report, UsageWindow};

/// Day 20520 is 2026-03-08 (UTC); `NOW` is noon that day.
const TODAY: i64 = 20_520;
const NOW: Timestamp = TODAY * 86_400 + 43_200;

fn row(day: i64, org: &str, user: &str, route: &str, requests: i64) -> UsageRow {
    UsageRow {
        day,
        org_id: org.into(),
        user_id: user.into(),
        route: route.into(),
        requests,
    }
}

fn since(day: i64) -> UsageFilter {
    UsageFilter {
        since_day: day,
        ..UsageFilter::default()
    }
}

/// (org, user, route, requests) of each total.
fn counts(totals: &[UsageTotal]) -> Vec<(&str, &str, &str, i64)> {
    totals
        .iter()
        .map(|t| {
            (
                t.org_id.as_str(),
                t.user_id.as_str(),
                t.route.as_str(),
                t.requests,
            )
        })
        .collect()
}

/// Make inserts of usage rows for `user` fail (a trigger; the syntax differs).
async fn refuse_user(db: &Db, user: &str) {
    let sql = if db.store.kind() == "postgres" {
        format!(
            "CREATE FUNCTION usage_refuse() RETURNS trigger AS $$ BEGIN \
               IF NEW.user_id = '{user}' THEN RAISE EXCEPTION 'refused'; END IF; \
               RETURN NEW; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER usage_refuse BEFORE INSERT ON usage_daily \
               FOR EACH ROW EXECUTE FUNCTION usage_refuse();"
        )
    } else {
        format!(
            "CREATE TRIGGER usage_refuse BEFORE INSERT ON usage_daily \
             WHEN NEW.user_id = '{user}' BEGIN SELECT RAISE(ABORT, 'refused'); END;"
        )
    };
    raw_sql(db, &sql).await;
}

#[tokio::test]
async fn flushes_of_several_instances_add_into_the_same_rows() {
    on_both(|db| async move {
        // A second gateway instance: its own pool on the same database.
        let other = connect(&db.url).await.expect("second instance");
        let first = [
            row(TODAY, "acme", "u-bob", "dashboard", 3),
            row(TODAY, "acme", "u-bob", "reports", 1),
        ];
        db.store.add_usage(&first).await.expect("first flush");
        let second = [row(TODAY, "acme", "u-bob", "dashboard", 4)];
        other.add_usage(&second).await.expect("other instance");
        // Both at once, overlapping keys.
        let a = [
            row(TODAY, "acme", "u-bob", "dashboard", 10),
            row(TODAY, "acme", "u-bob", "reports", 10),
        ];
        let b = [
            row(TODAY, "acme", "u-bob", "reports", 100),
            row(TODAY, "acme", "u-bob", "dashboard", 100),
        ];
        let (ra, rb) = tokio::join!(db.store.add_usage(&a), other.add_usage(&b));
        ra.expect("concurrent flush a");
        rb.expect("concurrent flush b");
        // The same key twice in one flush is summed; zero counts change nothing.
        let twice = [
            row(TODAY, "acme", "u-bob", "dashboard", 1000),
            row(TODAY, "acme", "u-bob", "dashboard", 1000),
            row(TODAY, "acme", "u-bob", "admin", 0),
        ];
        db.store.add_usage(&twice).await.expect("duplicate keys");
        db.store.add_usage(&[]).await.expect("nothing to add");
        let totals = db.store.usage(&since(TODAY)).await.expect("usage");
        assert_eq!(
            counts(&totals),
            [
                ("acme", "u-bob", "dashboard", 2_117),
                ("acme", "u-bob", "reports", 111),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_large_flush_is_one_transaction_over_several_statements() {
    on_both(|db| async move {
        // 250 users: two full statements of 100 rows and one of 50.
        let rows: Vec<UsageRow> = (0..250)
            .map(|i| row(TODAY, "acme", &format!("u-{i:03}"), "dashboard", i + 1))
            .collect();
        db.store.add_usage(&rows).await.expect("flush");
        db.store.add_usage(&rows).await.expect("flush again");
        let totals = db.store.usage(&since(TODAY)).await.expect("usage");
        assert_eq!(totals.len(), 250);
        assert!(totals
            .iter()
            .zip(1..)
            .all(|(t, n)| t.requests == 2 * n && t.user_id == format!("u-{:03}", n - 1)));
        // A statement failing late (the refused row sorts last, in the third statement)
        // rolls the whole flush back: nothing of it is added.
        refuse_user(&db, "u-zzz").await;
        let mut bad = rows.clone();
        bad.push(row(TODAY, "acme", "u-zzz", "dashboard", 1));
        assert!(db.store.add_usage(&bad).await.is_err());
        let after = db.store.usage(&since(TODAY)).await.expect("usage");
        assert_eq!(after, totals, "a failed flush adds nothing");
    })
    .await;
}

/// Sorted by org, `first` user before the others, route.
fn with_first<'a>(
    mut v: Vec<(&'a str, &'a str, &'a str, i64)>,
    first: &str,
) -> Vec<(&'a str, &'a str, &'a str, i64)> {
    v.sort_by_key(|t| (t.0, t.1 != first, t.1, t.2));
    v
}

#[tokio::test]
async fn totals_filter_by_day_org_and_user_with_emails() {
    on_both(|db| async move {
        with_sample(&db).await;
        let alice = user_id(&*db.store, "alice@acme.example").await;
        let bob = user_id(&*db.store, "bob@acme.example").await;
        db.store
            .add_usage(&[
                row(TODAY - 40, "acme", &bob, "dashboard", 1_000),
                row(TODAY - 29, "acme", &bob, "dashboard", 300),
                row(TODAY - 6, "acme", &bob, "dashboard", 70),
                row(TODAY - 6, "acme", &alice, "reports", 7),
                row(TODAY, "acme", &bob, "dashboard", 5),
                row(TODAY, "acme", &bob, "reports", 2),
                row(TODAY, "globex", "u-gone", "dashboard", 9),
            ])
            .await
            .expect("flush");
        let bob_first = |v| with_first(v, &bob);
        let today = db.store.usage(&since(TODAY)).await.expect("usage");
        assert_eq!(
            bob_first(counts(&today)),
            [
                ("acme", bob.as_str(), "dashboard", 5),
                ("acme", bob.as_str(), "reports", 2),
                ("globex", "u-gone", "dashboard", 9),
            ]
        );
        let week = db.store.usage(&since(TODAY - 6)).await.expect("usage");
        assert_eq!(
            bob_first(counts(&week)),
            [
                ("acme", bob.as_str(), "dashboard", 75),
                ("acme", bob.as_str(), "reports", 2),
                ("acme", alice.as_str(), "reports", 7),
                ("globex", "u-gone", "dashboard", 9),
            ]
        );
        let emails: Vec<_> = week.iter().map(|t| t.email.as_deref()).collect();
        assert!(emails.contains(&Some("bob@acme.example")));
        assert!(emails.contains(&Some("alice@acme.example")));
        assert!(emails.contains(&None), "a user no longer in the directory");
        let month = db.store.usage(&since(TODAY - 29)).await.expect("usage");
        let bob_dashboard = month
            .iter()
            .find(|t| t.user_id == bob && t.route == "dashboard")
            .map(|t| t.requests);
        assert_eq!(bob_dashboard, Some(375));

        let acme = UsageFilter {
            org: Some("acme".into()),
            ..since(TODAY - 6)
        };
        let acme = db.store.usage(&acme).await.expect("usage");
        assert!(acme.iter().all(|t| t.org_id == "acme"));
        assert_eq!(acme.len(), 3);
        let alice_only = UsageFilter {
            user: Some(alice.clone()),
            ..since(TODAY - 6)
        };
        let alice_only = db.store.usage(&alice_only).await.expect("usage");
        assert_eq!(
            counts(&alice_only),
            [("acme", alice.as_str(), "reports", 7)]
        );
        let nobody = UsageFilter {
            org: Some("globex".into()),
            user: Some(alice.clone()),
            ..since(0)
        };
        assert!(db.store.usage(&nobody).await.expect("usage").is_empty());

        // Pruning drops whole days before the cutoff.
        assert_eq!(db.store.prune_usage(TODAY - 29).await.expect("prune"), 1);
        let all = db.store.usage(&since(0)).await.expect("usage");
        let total: i64 = all.iter().map(|t| t.requests).sum();
        assert_eq!(total, 300 + 70 + 7 + 5 + 2 + 9);
    })
    .await;
}

#[tokio::test]
async fn the_report_totals_per_org_user_and_route() {
    on_both(|db| async move {
        with_sample(&db).await;
        let alice = user_id(&*db.store, "alice@acme.example").await;
        let bob = user_id(&*db.store, "bob@acme.example").await;
        db.store
            .add_usage(&[
                row(TODAY - 7, "acme", &bob, "dashboard", 1_000),
                row(TODAY - 6, "acme", &bob, "dashboard", 20),
                row(TODAY, "acme", &bob, "dashboard", 8),
                row(TODAY, "acme", &bob, "reports", 12),
                row(TODAY, "acme", &alice, "dashboard", 2),
                row(TODAY, "globex", "u-carol", "reports", 5),
            ])
            .await
            .expect("flush");
        let store = &*db.store;
        let week = usage_report(store, None, None, UsageWindow::Week, NOW)
            .await
            .expect("report");
        assert_eq!(
            (week.from.as_str(), week.to.as_str()),
            ("2026-03-02", "2026-03-08")
        );
        assert_eq!(week.total, 47);
        let orgs: Vec<_> = week
            .orgs
            .iter()
            .map(|o| (o.org.as_str(), o.requests, o.users))
            .collect();
        assert_eq!(orgs, [("acme", 42, 2), ("globex", 5, 1)]);
        let users: Vec<_> = week
            .users
            .iter()
            .map(|u| (u.email.as_deref(), u.requests))
            .collect();
        assert_eq!(
            users,
            [
                (Some("bob@acme.example"), 40),
                (None, 5),
                (Some("alice@acme.example"), 2)
            ]
        );
        let routes: Vec<_> = week
            .routes
            .iter()
            .map(|r| (r.route.as_str(), r.requests, r.users))
            .collect();
        assert_eq!(routes, [("dashboard", 30, 2), ("reports", 17, 2)]);

        let day = usage_report(store, Some("acme"), None, UsageWindow::Day, NOW)
            .await
            .expect("report");
        assert_eq!((day.total, day.org.as_deref()), (22, Some("acme")));
        let month = usage_report(store, None, None, UsageWindow::Month, NOW)
            .await
            .expect("report");
        assert_eq!(month.total, 1_047);

        // A user by email or by id.
        let by_email = usage_report(
            store,
            None,
            Some("bob@acme.example"),
            UsageWindow::Week,
            NOW,
        )
        .await
        .expect("report");
        assert_eq!(by_email.total, 40);
        assert_eq!(by_email.users.len(), 1);
        assert_eq!(by_email.user.as_deref(), Some("bob@acme.example"));
        let by_id = usage_report(store, None, Some(&bob), UsageWindow::Week, NOW)
            .await
            .expect("report");
        assert_eq!(by_id.total, 40);
        let unknown = usage_report(
            store,
            None,
            Some("nobody@x.example"),
            UsageWindow::Week,
            NOW,
        )
        .await
        .expect("report");
        assert_eq!((unknown.total, unknown.users.len()), (0, 0));
    })
    .await;
}
