//! `impl SsoStore` for one sqlx database, stamped out by `sql_sso!`. Each write is one
//! transaction: its rows, the directory change, the audit record.

/// `sql_sso!(Store type, DB)`.
macro_rules! sql_sso {
    ($store:ident, $db:ty) => {
        const _: () = {
            use async_trait::async_trait;
            use serde_json::json;
            use sqlx::Row;

            use $crate::directory::audit::{AuditActor, AuditEntry, AuditOutcome};
            use $crate::directory::changes::ChangeTarget;
            use $crate::directory::model::{OrgStatus, Timestamp, UserStatus};
            use $crate::directory::sql::sso_queries as sq;
            use $crate::directory::sql::{lifecycle_queries as lq, queries as q, rows};
            use $crate::directory::sso::{
                SsoConnection, SsoFlow, SsoSignIn, SsoSignedIn, SsoStore,
            };
            use $crate::directory::store::{StoreError, StoreResult};

            type Conn = <$db as sqlx::Database>::Connection;
            type DbRow = <$db as sqlx::Database>::Row;

            fn words(s: &str) -> Vec<String> {
                s.split_whitespace().map(str::to_string).collect()
            }

            fn connection(row: &DbRow) -> StoreResult<SsoConnection> {
                let role_map: String = row.try_get(7)?;
                let role_map: Vec<(String, String)> = serde_json::from_str(&role_map)
                    .map_err(|e| StoreError::Unavailable(format!("corrupt role_map: {e}")))?;
                Ok(SsoConnection {
                    org_id: row.try_get(0)?,
                    issuer: row.try_get(1)?,
                    client_id: row.try_get(2)?,
                    client_secret: row.try_get(3)?,
                    scopes: words(&row.try_get::<String, _>(4)?),
                    email_claim: row.try_get(5)?,
                    roles_claim: row.try_get(6)?,
                    role_map,
                    default_roles: words(&row.try_get::<String, _>(8)?),
                    jit: row.try_get::<i64, _>(9)? != 0,
                    enforce: row.try_get::<i64, _>(10)? != 0,
                    idp_mfa: row.try_get::<i64, _>(11)? != 0,
                    mfa_acr_values: words(&row.try_get::<String, _>(12)?),
                    userinfo: row.try_get::<i64, _>(13)? != 0,
                    created_at: row.try_get(14)?,
                    updated_at: row.try_get(15)?,
                })
            }

            /// What an audit record shows of a connection: everything but the secret's
            /// source, which it names by kind only.
            fn audited(c: &SsoConnection) -> serde_json::Value {
                let mut v = c.to_json();
                let kind = c.client_secret.split(':').next().unwrap_or_default();
                v["client_secret"] = json!(kind);
                v
            }

            impl $store {
                /// The end of every org-level SSO write: the audit record (`action` on
                /// `org:{org_id}`) and the org's directory change, in `conn`'s transaction.
                async fn sso_org_change_in(
                    conn: &mut Conn,
                    actor: &AuditActor,
                    action: &str,
                    org_id: &str,
                    before: serde_json::Value,
                    after: serde_json::Value,
                    now: Timestamp,
                ) -> StoreResult<()> {
                    let entry = actor.entry(
                        action,
                        format!("org:{org_id}"),
                        Some(org_id.to_string()),
                        before,
                        after,
                    );
                    let targets = vec![ChangeTarget::Org(org_id.to_string())];
                    Self::finish(conn, targets, entry, now).await
                }

                async fn org_exists_in(conn: &mut Conn, org_id: &str) -> StoreResult<()> {
                    let found = sqlx::query(sq::ORG_EXISTS)
                        .bind(org_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                    match found {
                        Some(_) => Ok(()),
                        None => Err(StoreError::NotFound(format!("no org {org_id:?}"))),
                    }
                }

                /// Split `roles` into those the org's bounds allow (the role exists, is
                /// delegable, and the org allows it) and those refused.
                async fn bounded_roles_in(
                    conn: &mut Conn,
                    org_id: &str,
                    roles: &[String],
                ) -> StoreResult<(Vec<String>, Vec<String>)> {
                    let restricted: i64 = sqlx::query_scalar(sq::ORG_ROLES_RESTRICTED)
                        .bind(org_id)
                        .fetch_one(&mut *conn)
                        .await?;
                    let (mut ok, mut refused) = (Vec::new(), Vec::new());
                    for role in roles {
                        let delegable: Option<i64> = sqlx::query_scalar(sq::ROLE_DELEGABLE)
                            .bind(role)
                            .fetch_optional(&mut *conn)
                            .await?;
                        let allowed = restricted == 0
                            || sqlx::query(sq::ORG_ALLOWS_ROLE)
                                .bind(org_id)
                                .bind(role)
                                .fetch_optional(&mut *conn)
                                .await?
                                .is_some();
                        if delegable == Some(1) && allowed {
                            ok.push(role.clone());
                        } else {
                            refused.push(role.clone());
                        }
                    }
                    Ok((rows::sorted(ok), rows::sorted(refused)))
                }

                /// The user an SSO sign-in names, created when `jit` allows; the
                /// second value is true when this call created them.
                async fn sso_user_in(
                    conn: &mut Conn,
                    s: &SsoSignIn,
                    now: Timestamp,
                ) -> StoreResult<(String, bool)> {
                    let linked: Option<String> = sqlx::query_scalar(sq::LINK_BY_SUBJECT)
                        .bind(&s.org_id)
                        .bind(&s.subject)
                        .fetch_optional(&mut *conn)
                        .await?;
                    if let Some(id) = linked {
                        sqlx::query(sq::TOUCH_LINK)
                            .bind(&s.org_id)
                            .bind(&s.subject)
                            .bind(&s.sid)
                            .bind(now)
                            .execute(&mut *conn)
                            .await?;
                        return Ok((id, false));
                    }
                    let by_email = sqlx::query(lq::USER_BY_EMAIL_SHORT)
                        .bind(&s.email)
                        .fetch_optional(&mut *conn)
                        .await?;
                    let (id, created) = match by_email {
                        Some(row) => {
                            let id: String = row.try_get(0)?;
                            let org: String = row.try_get(1)?;
                            if org != s.org_id {
                                return Err(StoreError::Refused("other_org"));
                            }
                            // Linked to another subject of this IdP already: refuse
                            // rather than re-link (an IdP that reuses emails).
                            let other = sqlx::query(sq::LINK_OF_USER)
                                .bind(&id)
                                .fetch_optional(&mut *conn)
                                .await?;
                            if other.is_some() {
                                return Err(StoreError::Refused("other_subject"));
                            }
                            (id, false)
                        }
                        None if s.jit => {
                            Self::take_seat(&mut *conn, &s.org_id).await?;
                            let id = rows::new_user_id();
                            sqlx::query(sq::INSERT_ACTIVE_USER)
                                .bind(&id)
                                .bind(&s.email)
                                .bind(&s.org_id)
                                .bind(now)
                                .execute(&mut *conn)
                                .await?;
                            (id, true)
                        }
                        None => return Err(StoreError::Refused("unknown_user")),
                    };
                    sqlx::query(sq::INSERT_LINK)
                        .bind(&s.org_id)
                        .bind(&s.subject)
                        .bind(&id)
                        .bind(&s.sid)
                        .bind(now)
                        .execute(&mut *conn)
                        .await?;
                    Ok((id, created))
                }
            }

            #[async_trait]
            impl SsoStore for $store {
                async fn sso_connection(&self, org_id: &str) -> StoreResult<Option<SsoConnection>> {
                    let row = sqlx::query(sq::CONNECTION)
                        .bind(org_id)
                        .fetch_optional(&self.pool)
                        .await?;
                    row.as_ref().map(connection).transpose()
                }

                async fn sso_connections(&self) -> StoreResult<Vec<SsoConnection>> {
                    let found = sqlx::query(sq::CONNECTIONS).fetch_all(&self.pool).await?;
                    found.iter().map(connection).collect()
                }

                async fn put_sso_connection(
                    &self,
                    c: &SsoConnection,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<Option<SsoConnection>> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    Self::org_exists_in(&mut tx, &c.org_id).await?;
                    let before = sqlx::query(sq::CONNECTION)
                        .bind(&c.org_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let before = before.as_ref().map(connection).transpose()?;
                    let role_map = serde_json::to_string(&c.role_map)
                        .map_err(|e| StoreError::Invalid(vec![e.to_string()]))?;
                    sqlx::query(sq::UPSERT_CONNECTION)
                        .bind(&c.org_id)
                        .bind(&c.issuer)
                        .bind(&c.client_id)
                        .bind(&c.client_secret)
                        .bind(c.scopes.join(" "))
                        .bind(&c.email_claim)
                        .bind(&c.roles_claim)
                        .bind(role_map)
                        .bind(c.default_roles.join(" "))
                        .bind(i64::from(c.jit))
                        .bind(i64::from(c.enforce))
                        .bind(i64::from(c.idp_mfa))
                        .bind(c.mfa_acr_values.join(" "))
                        .bind(i64::from(c.userinfo))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    Self::sso_org_change_in(
                        &mut tx,
                        actor,
                        "sso.connection.put",
                        &c.org_id,
                        before.as_ref().map(audited).unwrap_or_default(),
                        audited(c),
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(before)
                }

                async fn delete_sso_connection(
                    &self,
                    org_id: &str,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let before = sqlx::query(sq::CONNECTION)
                        .bind(org_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(before) = before.as_ref().map(connection).transpose()? else {
                        tx.rollback().await?;
                        return Ok(false);
                    };
                    sqlx::query(sq::DELETE_CONNECTION)
                        .bind(org_id)
                        .execute(&mut *tx)
                        .await?;
                    Self::sso_org_change_in(
                        &mut tx,
                        actor,
                        "sso.connection.delete",
                        &org_id,
                        audited(&before),
                        serde_json::Value::Null,
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn org_domains(&self, org_id: &str) -> StoreResult<Vec<String>> {
                    Ok(sqlx::query_scalar(sq::ORG_DOMAINS)
                        .bind(org_id)
                        .fetch_all(&self.pool)
                        .await?)
                }

                async fn domain_org(&self, domain: &str) -> StoreResult<Option<String>> {
                    Ok(sqlx::query_scalar(sq::DOMAIN_ORG)
                        .bind(domain)
                        .fetch_optional(&self.pool)
                        .await?)
                }

                async fn add_org_domain(
                    &self,
                    org_id: &str,
                    domain: &str,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    Self::org_exists_in(&mut tx, org_id).await?;
                    let owner: Option<String> = sqlx::query_scalar(sq::DOMAIN_ORG)
                        .bind(domain)
                        .fetch_optional(&mut *tx)
                        .await?;
                    match owner {
                        Some(o) if o == org_id => {
                            tx.rollback().await?;
                            return Ok(false);
                        }
                        Some(_) => {
                            return Err(StoreError::Conflict(format!(
                                "the domain {domain:?} belongs to another org"
                            )))
                        }
                        None => {}
                    }
                    sqlx::query(sq::INSERT_DOMAIN)
                        .bind(domain)
                        .bind(org_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    Self::sso_org_change_in(
                        &mut tx,
                        actor,
                        "sso.domain.add",
                        &org_id,
                        serde_json::Value::Null,
                        json!({ "domain": domain }),
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn remove_org_domain(
                    &self,
                    org_id: &str,
                    domain: &str,
                    actor: &AuditActor,
                    now: Timestamp,
                ) -> StoreResult<bool> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let done = sqlx::query(sq::DELETE_DOMAIN)
                        .bind(org_id)
                        .bind(domain)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                    Self::sso_org_change_in(
                        &mut tx,
                        actor,
                        "sso.domain.remove",
                        &org_id,
                        json!({ "domain": domain }),
                        serde_json::Value::Null,
                        now,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn insert_sso_flow(&self, f: &SsoFlow, now: Timestamp) -> StoreResult<()> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    sqlx::query(sq::DELETE_EXPIRED_FLOWS)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(sq::INSERT_FLOW)
                        .bind(&f.state_hash)
                        .bind(&f.org_id)
                        .bind(&f.nonce)
                        .bind(&f.verifier)
                        .bind(&f.rd)
                        .bind(f.created_at)
                        .bind(f.expires_at)
                        .execute(&mut *tx)
                        .await?;
                    Ok(tx.commit().await?)
                }

                async fn take_sso_flow(
                    &self,
                    state_hash: &str,
                    now: Timestamp,
                ) -> StoreResult<Option<SsoFlow>> {
                    let row = sqlx::query(sq::TAKE_FLOW)
                        .bind(state_hash)
                        .fetch_optional(&self.pool)
                        .await?;
                    let Some(row) = row else { return Ok(None) };
                    let flow = SsoFlow {
                        state_hash: row.try_get(0)?,
                        org_id: row.try_get(1)?,
                        nonce: row.try_get(2)?,
                        verifier: row.try_get(3)?,
                        rd: row.try_get(4)?,
                        created_at: row.try_get(5)?,
                        expires_at: row.try_get(6)?,
                    };
                    Ok((flow.expires_at > now).then_some(flow))
                }

                async fn sso_sign_in(
                    &self,
                    s: &SsoSignIn,
                    audit_after: serde_json::Value,
                    now: Timestamp,
                ) -> StoreResult<SsoSignedIn> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    let status: Option<String> = sqlx::query_scalar(lq::LOCK_ORG)
                        .bind(&s.org_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if status.as_deref().and_then(OrgStatus::parse) != Some(OrgStatus::Active) {
                        return Err(StoreError::Refused("org_inactive"));
                    }
                    let (user_id, provisioned) = Self::sso_user_in(&mut tx, s, now).await?;
                    let (status, _org) = Self::lock_user(&mut tx, &user_id).await?;
                    match UserStatus::parse(&status) {
                        Some(UserStatus::Active) => {}
                        Some(UserStatus::Invited) => {
                            // The invited person proved who they are through their
                            // org's IdP: that accepts the invitation.
                            sqlx::query(sq::ACTIVATE_USER)
                                .bind(&user_id)
                                .execute(&mut *tx)
                                .await?;
                            sqlx::query(lq::REVOKE_OPEN_INVITATIONS)
                                .bind(&user_id)
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                        }
                        _ => return Err(StoreError::Refused("user_inactive")),
                    }
                    let wanted = match (&s.roles, provisioned) {
                        (Some(mapped), _) => Some(mapped.clone()),
                        (None, true) => Some(s.default_roles.clone()),
                        (None, false) => None,
                    };
                    let before = Self::user_roles_in(&mut tx, &user_id).await?;
                    let (roles, refused_roles) = match wanted {
                        Some(wanted) => {
                            let (ok, refused) =
                                Self::bounded_roles_in(&mut tx, &s.org_id, &wanted).await?;
                            if ok != before {
                                Self::write_roles(&mut tx, &user_id, &ok).await?;
                            }
                            (ok, refused)
                        }
                        None => (before.clone(), Vec::new()),
                    };
                    sqlx::query(q::LOGIN_SUCCESS)
                        .bind(&user_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    let actor = AuditActor {
                        actor_email: Some(s.email.clone()),
                        ..s.actor.clone()
                    };
                    let actor = AuditActor {
                        actor: user_id.clone(),
                        ..actor
                    };
                    let target = format!("user:{user_id}");
                    if provisioned {
                        let entry = actor.entry(
                            "sso.provision",
                            target.clone(),
                            Some(s.org_id.clone()),
                            serde_json::Value::Null,
                            json!({ "email": s.email, "roles": roles, "subject": s.subject }),
                        );
                        Self::append_audit_in(&mut tx, &entry, now).await?;
                    }
                    let mut after = audit_after;
                    if let Some(map) = after.as_object_mut() {
                        map.insert("roles".into(), json!(roles));
                        if !refused_roles.is_empty() {
                            map.insert("refused_roles".into(), json!(refused_roles));
                        }
                    }
                    let mut entry = actor.entry(
                        $crate::directory::audit::ACTION_LOGIN_SUCCESS,
                        target,
                        Some(s.org_id.clone()),
                        json!({ "roles": before }),
                        after,
                    );
                    entry.outcome = AuditOutcome::Ok;
                    let targets = vec![ChangeTarget::User(user_id.clone())];
                    Self::finish(&mut tx, targets, entry, now).await?;
                    tx.commit().await?;
                    Ok(SsoSignedIn {
                        user_id,
                        provisioned,
                        refused_roles,
                        roles,
                    })
                }

                async fn sso_user(
                    &self,
                    org_id: &str,
                    subject: Option<&str>,
                    sid: Option<&str>,
                ) -> StoreResult<Option<String>> {
                    if let Some(subject) = subject {
                        return Ok(sqlx::query_scalar(sq::LINK_BY_SUBJECT)
                            .bind(org_id)
                            .bind(subject)
                            .fetch_optional(&self.pool)
                            .await?);
                    }
                    match sid {
                        Some(sid) => Ok(sqlx::query_scalar(sq::LINK_BY_SID)
                            .bind(org_id)
                            .bind(sid)
                            .fetch_optional(&self.pool)
                            .await?),
                        None => Ok(None),
                    }
                }

                async fn sso_audit(&self, entry: &AuditEntry, now: Timestamp) -> StoreResult<()> {
                    let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
                    Self::append_audit_in(&mut tx, entry, now).await?;
                    Ok(tx.commit().await?)
                }
            }
        };
    };
}
