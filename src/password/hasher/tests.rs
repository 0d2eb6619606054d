use super::*;

const PREFIX: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

#[tokio::test]
async fn hash_then_verify() {
    let hasher = PasswordHasher::new(2, 4);
    let phc = hasher.hash("partner-demo-2026".to_owned()).await.unwrap();
    assert!(phc.starts_with(PREFIX), "{phc}");
    assert!(!phc.contains("partner-demo-2026"));

    let right = hasher.verify("partner-demo-2026".to_owned(), Some(phc.clone()));
    assert!(right.await.unwrap());
    let wrong = hasher.verify("partner-demo-2027".to_owned(), Some(phc.clone()));
    assert!(!wrong.await.unwrap());
    let empty = hasher.verify(String::new(), Some(phc));
    assert!(!empty.await.unwrap());
}

#[tokio::test]
async fn same_password_gets_a_fresh_salt() {
    let hasher = PasswordHasher::new(1, 4);
    let first = hasher.hash("same password".to_owned()).await.unwrap();
    let second = hasher.hash("same password".to_owned()).await.unwrap();
    assert_ne!(first, second);
}

#[tokio::test]
async fn unknown_user_is_false_not_an_error() {
    let hasher = PasswordHasher::new(1, 1);
    assert!(!hasher.verify("anything".to_owned(), None).await.unwrap());
    // Not even the dummy's secret opens it: the dummy is never a real credential.
    assert!(!hasher.verify(String::new(), None).await.unwrap());
}

#[test]
fn dummy_hash_costs_what_a_real_one_costs() {
    assert!(DUMMY_PHC.starts_with(PREFIX), "{DUMMY_PHC}");
    let dummy = PasswordHash::new(DUMMY_PHC).unwrap();
    let real = hash_now("x").unwrap();
    let real = PasswordHash::new(&real).unwrap();
    assert_eq!(dummy.params, real.params);
    assert_eq!(dummy.algorithm, real.algorithm);
    assert_eq!(dummy.version, real.version);
    assert_eq!(dummy.salt.map(|s| s.len()), real.salt.map(|s| s.len()));
    assert_eq!(dummy.hash.map(|h| h.len()), real.hash.map(|h| h.len()));
}

#[tokio::test]
async fn malformed_stored_hash_is_an_error() {
    let hasher = PasswordHasher::new(1, 1);
    for stored in ["", "not a hash", "$argon2id$v=19$m=19456"] {
        let result = hasher
            .verify("partner-demo-2026".to_owned(), Some(stored.to_owned()))
            .await;
        assert!(
            matches!(result, Err(HashError::InvalidStoredHash)),
            "{stored:?}: {result:?}"
        );
    }
}

#[tokio::test]
async fn full_queue_is_busy_at_once() {
    let hasher = PasswordHasher::new(1, 1);
    let calls = (0..8).map(|i| hasher.hash(format!("password number {i}")));
    let results = futures::future::join_all(calls).await;
    let busy = results
        .iter()
        .filter(|r| matches!(r, Err(HashError::Busy)))
        .count();
    let done = results.iter().filter(|r| r.is_ok()).count();
    assert!(done >= 1, "{results:?}");
    // One running and one queued at most; the rest are turned away.
    assert!(busy >= 6, "{results:?}");
    assert_eq!(busy + done, 8, "{results:?}");
    assert_eq!(HashError::Busy.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn pool_recovers_after_busy() {
    let hasher = PasswordHasher::new(1, 0);
    let _ = futures::future::join_all((0..4).map(|_| hasher.verify("x".to_owned(), None))).await;
    // Once idle, the rendezvous queue accepts again (the worker may need a moment to
    // return to waiting).
    let mut accepted = false;
    for _ in 0..200 {
        if hasher.verify("x".to_owned(), None).await.is_ok() {
            accepted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(accepted);
}

#[test]
fn default_pool_is_small() {
    let threads = default_threads();
    assert!((1..=MAX_DEFAULT_THREADS).contains(&threads));
}

/// The shipped demo directory: every user's hash opens with the documented demo password,
/// which the contract's default policy accepts.
#[test]
fn demo_directory_hashes_match_the_demo_password() {
    const DEMO_PASSWORD: &str = "partner-demo-2026";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo-directory.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let data: crate::directory::DirectoryData = toml::from_str(&text).unwrap();
    assert_eq!(data.users.len(), 6);
    assert_eq!(
        crate::password::PasswordPolicy::new(12).check(DEMO_PASSWORD),
        Ok(())
    );
    for user in &data.users {
        let phc = user.password_hash.as_deref().unwrap();
        assert!(phc.starts_with(PREFIX), "{}", user.email);
        assert!(
            verify_now(DEMO_PASSWORD, Some(phc)).unwrap(),
            "{}",
            user.email
        );
        assert!(!verify_now("partner-demo-2025", Some(phc)).unwrap());
    }
}
