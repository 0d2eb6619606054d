//! The mail outbox and password reset tokens on both stores: a mail is claimed by one
//! worker at a time, retried, marked sent with its bodies emptied, and pruned; a reset
//! token works once and is limited per account.

use super::*;
use crate::directory::mail::{MailKind, OutgoingMail, PasswordReset, ResetRequested};

fn letter(to: &str) -> OutgoingMail {
    OutgoingMail {
        kind: MailKind::PasswordReset,
        recipient: to.into(),
        subject: "s".into(),
        text: "https://p/.partnergate/reset/secret-token".into(),
        html: "<p>x</p>".into(),
    }
}

#[tokio::test]
async fn outbox_claims_once_retries_and_prunes() {
    on_both(|db| async move {
        with_sample(&db).await;
        let store = &*db.store;
        let id = user_id(store, "bob@acme.example").await;
        let reset = PasswordReset {
            token_hash: "h1".into(),
            user_id: id.clone(),
            expires_at: 2_000,
        };
        let actor = AuditActor::new("anonymous");
        let queued = store
            .request_password_reset(&reset, &letter("bob@acme.example"), 3, 0, &actor, 1_000)
            .await
            .unwrap();
        assert_eq!(queued, ResetRequested::Queued);
        assert_eq!(store.outbox_depth().await.unwrap(), 1);
        // One claim takes it; a second worker at the same moment gets nothing.
        let first = store.claim_mail(1_000, 300, 10).await.unwrap();
        assert_eq!(first.len(), 1);
        assert!(store.claim_mail(1_000, 300, 10).await.unwrap().is_empty());
        // A failed attempt comes back at its next attempt time, not before.
        store
            .mail_failed(&first[0].id, 1_010, "connection refused", false, 1_000)
            .await
            .unwrap();
        assert!(store.claim_mail(1_005, 300, 10).await.unwrap().is_empty());
        let again = store.claim_mail(1_010, 300, 10).await.unwrap();
        assert_eq!((again.len(), again[0].attempts), (1, 1));
        store.mail_sent(&again[0].id, 1_020).await.unwrap();
        assert_eq!(store.outbox_depth().await.unwrap(), 0);
        assert!(store.claim_mail(99_999, 300, 10).await.unwrap().is_empty());
        // Kept until pruned; the token row goes once expired.
        assert_eq!(store.prune_mail(1_000).await.unwrap(), 0);
        assert_eq!(store.prune_mail(5_000).await.unwrap(), 2);
    })
    .await;
}

#[tokio::test]
async fn reset_tokens_are_single_use_and_limited() {
    on_both(|db| async move {
        with_sample(&db).await;
        let store = &*db.store;
        let id = user_id(store, "bob@acme.example").await;
        let actor = AuditActor::new("anonymous");
        for (i, want) in [
            ResetRequested::Queued,
            ResetRequested::Queued,
            ResetRequested::Queued,
            ResetRequested::TooMany,
        ]
        .into_iter()
        .enumerate()
        {
            let reset = PasswordReset {
                token_hash: format!("t{i}"),
                user_id: id.clone(),
                expires_at: 5_000,
            };
            let got = store
                .request_password_reset(&reset, &letter("bob@acme.example"), 3, 0, &actor, 1_000)
                .await
                .unwrap();
            assert_eq!(got, want, "request {i}");
        }
        assert_eq!(
            store.outbox_depth().await.unwrap(),
            3,
            "no mail for the refused one"
        );
        assert_eq!(
            store.reset_user("t0", 1_100).await.unwrap(),
            Some(id.clone())
        );
        assert_eq!(
            store.reset_user("t0", 5_000).await.unwrap(),
            None,
            "expired"
        );
        let done = store
            .reset_password("t0", "$argon2id$new", &actor, 1_100)
            .await
            .unwrap();
        assert_eq!(done, Some(id.clone()));
        assert_eq!(
            store
                .reset_password("t0", "$argon2id$x", &actor, 1_101)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store.reset_user("t3", 1_100).await.unwrap(),
            None,
            "never stored"
        );
    })
    .await;
}
