//! Every admin API operation: its path, the permissions the policy engine requires, the
//! audit action of a refused attempt, and what the OpenAPI document says about it. The
//! router, the authorisation and the OpenAPI document all read this one table.

use http::Method;

use crate::config::{AuthMode, Mode, PathTemplate, RouteConfig};

/// One operation of the admin API.
#[derive(Debug)]
pub struct Op {
    /// The OpenAPI `operationId`.
    pub id: &'static str,
    pub method: Method,
    /// Under [`super::PREFIX`], OpenAPI style (`/orgs/{org}`).
    pub path: &'static str,
    /// Any one of these (the policy engine's `allow_permissions`); empty = any active user.
    pub permissions: &'static [&'static str],
    /// Only members of an org of `server.owner_org_type` (`allow_org_types`).
    pub owner_only: bool,
    /// The audit action of the change (and of a refused attempt).
    pub action: &'static str,
    pub summary: &'static str,
    /// The request body's schema name in the OpenAPI document, if it takes one.
    pub body: Option<&'static str>,
    /// The success status.
    pub status: u16,
}

impl Op {
    /// The built-in route the policy engine checks for this operation.
    pub fn route(&self, owner_org_type: &str) -> RouteConfig {
        RouteConfig {
            name: format!("admin-api:{}", self.id),
            host: None,
            path: PathTemplate::literal(super::PREFIX),
            methods: Some(vec![self.method.clone()]),
            upstream: String::new(),
            auth: AuthMode::Any,
            allow_roles: Vec::new(),
            allow_permissions: self.permissions.iter().map(|p| p.to_string()).collect(),
            allow_org_types: if self.owner_only {
                vec![owner_org_type.to_string()]
            } else {
                Vec::new()
            },
            account_permission: None,
            mode: Mode::Enforce,
            rate_limit: None,
            strip_prefix: None,
            websocket: false,
            require_mfa: false,
            max_auth_age: None,
        }
    }
}

const USERS: &[&str] = &["users:manage"];
const ORGS: &[&str] = &["orgs:manage"];
const ORGS_OR_USERS: &[&str] = &["orgs:manage", "users:manage"];
const GRANTS: &[&str] = &["accounts:manage", "users:manage"];
const REVIEW: &[&str] = &["audit:view", "users:manage"];

macro_rules! op {
    ($name:ident, $id:literal, $method:ident, $path:literal, $perms:expr, $owner:literal,
     $action:literal, $status:literal, $body:expr, $summary:literal) => {
        pub static $name: Op = Op {
            id: $id,
            method: Method::$method,
            path: $path,
            permissions: $perms,
            owner_only: $owner,
            action: $action,
            summary: $summary,
            body: $body,
            status: $status,
        };
    };
}

op!(
    ME,
    "getMe",
    GET,
    "/me",
    &[],
    false,
    "api.me",
    200,
    None,
    "The caller: user, org, roles, permissions, and whether they are an owner admin"
);
op!(ORGS_LIST, "listOrgs", GET, "/orgs", ORGS_OR_USERS, false, "org.list", 200, None,
    "Orgs: every org for owner admins (filter with ?status=pending for registration requests), the own org for delegated admins");
op!(
    ORG_CREATE,
    "createOrg",
    POST,
    "/orgs",
    ORGS,
    true,
    "org.create",
    201,
    Some("NewOrg"),
    "Create an org (active)"
);
op!(
    ORG_GET,
    "getOrg",
    GET,
    "/orgs/{org}",
    ORGS_OR_USERS,
    false,
    "org.get",
    200,
    None,
    "One org with seat cap, seats used, allowed roles and grant cap"
);
op!(
    ORG_UPDATE,
    "updateOrg",
    PATCH,
    "/orgs/{org}",
    ORGS,
    true,
    "org.update",
    200,
    Some("OrgPatch"),
    "Change an org's name, seat cap (max_users), allowed roles or grant cap (max_grant_ttl)"
);
op!(ORG_STATUS, "setOrgStatus", POST, "/orgs/{org}/{action}", ORGS, true, "org.status", 200, Some("OrgAction"),
    "approve | reject a registration; suspend | reactivate | offboard an org. Suspending and offboarding end every member's sessions at once on every instance; offboarding also disables every user and revokes every grant (records are kept)");
op!(
    USERS_LIST,
    "listOrgUsers",
    GET,
    "/orgs/{org}/users",
    USERS,
    false,
    "user.list",
    200,
    None,
    "The users of an org with roles, grants, last login and last request"
);
op!(
    INVITATIONS_LIST,
    "listInvitations",
    GET,
    "/orgs/{org}/invitations",
    USERS,
    false,
    "invitation.list",
    200,
    None,
    "The org's invitations and their state (open, accepted, expired, revoked)"
);
op!(INVITE, "createInvitation", POST, "/orgs/{org}/invitations", USERS, false, "invitation.create", 201, Some("NewInvitation"),
    "Invite an email into the org with roles: returns the single-use link (valid lifecycle.invitation_ttl)");
op!(
    USER_GET,
    "getUser",
    GET,
    "/users/{user}",
    USERS,
    false,
    "user.get",
    200,
    None,
    "One user with org, roles, permissions and grants"
);
op!(
    USER_UPDATE,
    "updateUser",
    PATCH,
    "/users/{user}",
    USERS,
    false,
    "user.roles",
    200,
    Some("UserPatch"),
    "Change a user's roles (delegable, allowed for the org, within the caller's rights)"
);
op!(
    USER_REMOVE,
    "removeUser",
    DELETE,
    "/users/{user}",
    USERS,
    false,
    "user.remove",
    200,
    None,
    "Remove a user from the org: disabled, sessions ended, grants revoked; the record stays"
);
op!(USER_STATUS, "setUserStatus", POST, "/users/{user}/{action}", USERS, false, "user.status", 200, None,
    "suspend | reactivate a user: effective on the next request on every instance (suspension ends every session of the user)");
op!(USER_FACTORS_RESET, "resetUserFactors", POST, "/users/{user}/factors/reset", USERS, false, "factor.reset", 200, None,
    "Remove every second factor and recovery code of a user (a lost phone): they sign in with their password and enrol again");
op!(
    GRANTS_LIST,
    "listGrants",
    GET,
    "/users/{user}/grants",
    GRANTS,
    false,
    "grant.list",
    200,
    None,
    "The user's client-account grants"
);
op!(
    GRANT_PUT,
    "putGrant",
    PUT,
    "/users/{user}/grants/{account}",
    GRANTS,
    false,
    "grant.assign",
    200,
    Some("GrantBody"),
    "Assign or change a grant: view | standard | admin, optionally until `expires`"
);
op!(
    GRANT_REVOKE,
    "revokeGrant",
    DELETE,
    "/users/{user}/grants/{account}",
    GRANTS,
    false,
    "grant.revoke",
    200,
    None,
    "Revoke a grant: effective on the next request on every instance"
);
op!(
    ROLES_LIST,
    "listRoles",
    GET,
    "/roles",
    ORGS_OR_USERS,
    false,
    "role.list",
    200,
    None,
    "Every role with its permissions and whether it is delegable"
);
op!(
    ROLE_PUT,
    "putRole",
    PUT,
    "/roles/{role}",
    &["roles:manage"],
    true,
    "role.put",
    200,
    Some("RoleBody"),
    "Define or redefine a role"
);
op!(
    ACCOUNTS_LIST,
    "listAccounts",
    GET,
    "/accounts",
    &["accounts:manage", "accounts:view", "users:manage"],
    false,
    "account.list",
    200,
    None,
    "Every client account"
);
op!(
    ACCOUNT_PUT,
    "putAccount",
    POST,
    "/accounts",
    &["accounts:manage"],
    true,
    "account.put",
    200,
    Some("AccountBody"),
    "Create or rename a client account"
);
op!(REVIEW_GET, "getReview", GET, "/review", REVIEW, false, "review.list", 200, None,
    "The access review: every user (the own org for delegated admins) with org, roles, grants, last login, last request, flags and the last decision");
op!(
    REVIEW_DECIDE,
    "decideReview",
    POST,
    "/review/{user}",
    REVIEW,
    false,
    "review.decide",
    200,
    Some("ReviewBody"),
    "Record keep | revoke for a user; revoke disables the user at once"
);
op!(AUDIT_LIST, "listAudit", GET, "/audit", REVIEW, false, "audit.list", 200, None,
    "Audit records, filtered by since, until, actor, org, action (prefix), after (seq) and limit; ?format=jsonl (or Accept: application/x-ndjson) exports JSON lines");

op!(USAGE_GET, "getUsage", GET, "/usage", REVIEW, false, "usage.get", 200, None,
    "Request counts per org, user and route over ?window=1d|7d|30d (default 7d), optionally for one ?org= or ?user= (id or email); delegated admins see their own org");

op!(
    SSO_GET,
    "getOrgSso",
    GET,
    "/orgs/{org}/sso",
    ORGS_OR_USERS,
    false,
    "sso.connection.get",
    200,
    None,
    "The org's OpenID Connect connection (where the client secret is read, never the secret)"
);
op!(SSO_PUT, "putOrgSso", PUT, "/orgs/{org}/sso", ORGS, true, "sso.connection.put", 200, Some("SsoConnection"),
    "Create or replace the org's OpenID Connect connection; the provider's discovery document must answer, and every role it can hand out must be delegable and allowed in the org");
op!(
    SSO_DELETE,
    "deleteOrgSso",
    DELETE,
    "/orgs/{org}/sso",
    ORGS,
    true,
    "sso.connection.delete",
    200,
    None,
    "Remove the org's OpenID Connect connection (its users sign in with a password again)"
);
op!(
    DOMAINS_LIST,
    "listOrgDomains",
    GET,
    "/orgs/{org}/domains",
    ORGS_OR_USERS,
    false,
    "sso.domain.list",
    200,
    None,
    "The org's email domains: sign-ins with these emails go to the org's identity provider"
);
op!(DOMAIN_ADD, "addOrgDomain", PUT, "/orgs/{org}/domains/{domain}", ORGS, true, "sso.domain.add", 201, None,
    "Attach an email domain to the org (a domain belongs to one org at most: 409 when another has it; 200 when this org has it already)");
op!(
    DOMAIN_REMOVE,
    "removeOrgDomain",
    DELETE,
    "/orgs/{org}/domains/{domain}",
    ORGS,
    true,
    "sso.domain.remove",
    200,
    None,
    "Detach an email domain from the org"
);

/// Every operation, for the OpenAPI document.
pub static OPS: &[&Op] = &[
    &ME,
    &ORGS_LIST,
    &ORG_CREATE,
    &ORG_GET,
    &ORG_UPDATE,
    &ORG_STATUS,
    &USERS_LIST,
    &INVITATIONS_LIST,
    &INVITE,
    &USER_GET,
    &USER_UPDATE,
    &USER_REMOVE,
    &USER_STATUS,
    &USER_FACTORS_RESET,
    &GRANTS_LIST,
    &GRANT_PUT,
    &GRANT_REVOKE,
    &ROLES_LIST,
    &ROLE_PUT,
    &ACCOUNTS_LIST,
    &ACCOUNT_PUT,
    &REVIEW_GET,
    &REVIEW_DECIDE,
    &AUDIT_LIST,
    &USAGE_GET,
    &SSO_GET,
    &SSO_PUT,
    &SSO_DELETE,
    &DOMAINS_LIST,
    &DOMAIN_ADD,
    &DOMAIN_REMOVE,
];
