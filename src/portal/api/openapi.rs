//! `GET /.partnergate/api/v1/openapi.json`: the OpenAPI 3.0 document of the admin API,
//! generated from [`super::ops::OPS`], so it lists exactly what the router serves.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::super::{with_outcome, PortalOutcome};
use super::ops::{Op, OPS};
use super::PREFIX;

pub async fn document() -> Response {
    let body = serde_json::to_string_pretty(&build()).unwrap_or_default();
    with_outcome(
        ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        PortalOutcome::allow(),
    )
}

/// The whole document.
pub fn build() -> Value {
    let mut paths = Map::new();
    for op in OPS {
        let item = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        if let Value::Object(item) = item {
            item.insert(op.method.as_str().to_lowercase(), operation(op));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "partnergate admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Partner lifecycle: orgs, registration, invitations, delegated admins, client-account grants, access review and audit. Authenticate with the gateway's session cookie or a bearer JWT of a configured issuer. Every operation is authorised by the policy engine (the permissions listed per operation); delegated partner admins are further limited to their own org, delegable roles the org allows, their own rights and the seat cap. A refusal is 403 with a `reason` and is audited.",
        },
        "servers": [{ "url": PREFIX }],
        "security": [{ "session": [] }, { "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": "__Host-partnergate" },
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
            },
            "schemas": schemas(),
            "responses": {
                "Unauthenticated": error_response("No or invalid credentials"),
                "Forbidden": error_response("Refused by policy or by the lifecycle bounds; `reason` says which (permission, org_type, other_org, self_change, not_delegable, role_not_allowed, above_own_rights, seat_cap, grant_above_own, grant_ttl, org_inactive)"),
                "BadRequest": error_response("The request is malformed"),
                "NotFound": error_response("No such record"),
                "Conflict": error_response("The change collides with the directory as it is"),
            },
        },
    })
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
    })
}

fn operation(op: &Op) -> Value {
    let mut parameters: Vec<Value> = path_params(op.path)
        .into_iter()
        .map(|name| {
            json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": { "type": "string" },
            })
        })
        .collect();
    if op.id == "listAudit" {
        for (name, description) in [
            ("since", "RFC 3339 or Unix seconds, inclusive"),
            ("until", "RFC 3339 or Unix seconds, exclusive"),
            ("actor", "user id of the actor, or system/anonymous"),
            (
                "actor_email",
                "email of the actor (for a failed login: the email typed), any case",
            ),
            ("org", "org id"),
            ("action", "action prefix, e.g. grant. or login."),
            ("after", "only records after this seq (paging)"),
            ("limit", "at most this many (default 100, max 1000)"),
            ("format", "jsonl for JSON lines"),
        ] {
            parameters.push(json!({
                "name": name, "in": "query", "required": false,
                "description": description, "schema": { "type": "string" },
            }));
        }
    }
    if op.id == "getUsage" {
        for (name, values) in [
            ("window", Some(["1d", "7d", "30d"])),
            ("org", None),
            ("user", None),
        ] {
            let schema = match values {
                Some(v) => json!({ "type": "string", "enum": v }),
                None => json!({ "type": "string" }),
            };
            parameters
                .push(json!({ "name": name, "in": "query", "required": false, "schema": schema }));
        }
    }
    if op.id == "listOrgs" {
        parameters.push(json!({
            "name": "status", "in": "query", "required": false,
            "schema": { "type": "string", "enum": ["pending", "active", "suspended", "offboarded"] },
        }));
    }
    let permissions = if op.permissions.is_empty() {
        "any active user".to_string()
    } else {
        op.permissions.join(" or ")
    };
    let owner = if op.owner_only {
        "; owner admins only"
    } else {
        ""
    };
    let mut responses = json!({
        op.status.to_string(): {
            "description": "Done",
            "content": { "application/json": { "schema": { "type": "object" } } },
        },
        "400": { "$ref": "#/components/responses/BadRequest" },
        "401": { "$ref": "#/components/responses/Unauthenticated" },
        "403": { "$ref": "#/components/responses/Forbidden" },
        "404": { "$ref": "#/components/responses/NotFound" },
    });
    if op.method != http::Method::GET {
        responses["409"] = json!({ "$ref": "#/components/responses/Conflict" });
    }
    let mut out = json!({
        "operationId": op.id,
        "summary": op.summary,
        "description": format!("Requires {permissions}{owner}. Audit action: `{}`.", op.action),
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(schema) = op.body {
        out["requestBody"] = json!({
            "required": schema != "OrgAction",
            "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } },
        });
    }
    out
}

/// `{name}` segments of a path, in order.
pub fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn schemas() -> Value {
    let roles = json!({ "type": "array", "items": { "type": "string" } });
    json!({
        "Error": {
            "type": "object",
            "required": ["error", "request_id"],
            "properties": {
                "error": { "type": "string" },
                "reason": { "type": "string" },
                "message": { "type": "string" },
                "request_id": { "type": "string" },
            },
        },
        "NewOrg": {
            "type": "object",
            "required": ["name", "type"],
            "additionalProperties": false,
            "properties": {
                "id": { "type": "string", "pattern": "^[a-z0-9-]{1,64}$" },
                "name": { "type": "string" },
                "type": { "type": "string" },
                "max_users": { "type": "integer", "minimum": 0 },
                "allowed_roles": roles,
                "max_grant_ttl": { "type": "string", "example": "30d" },
                "contact_email": { "type": "string", "format": "email" },
            },
        },
        "OrgPatch": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "name": { "type": "string" },
                "max_users": { "type": "integer", "minimum": 0, "nullable": true },
                "allowed_roles": { "type": "array", "items": { "type": "string" }, "nullable": true },
                "max_grant_ttl": { "type": "string", "nullable": true },
                "mfa": { "type": "string", "enum": ["required", "optional"] },
            },
        },
        "OrgAction": {
            "type": "object",
            "additionalProperties": false,
            "description": "Only for approve: invite the org's first user (email defaults to the registration's contact).",
            "properties": { "invite": { "$ref": "#/components/schemas/NewInvitation" } },
        },
        "NewInvitation": {
            "type": "object",
            "required": ["roles"],
            "additionalProperties": false,
            "properties": {
                "email": { "type": "string", "format": "email" },
                "roles": roles,
            },
        },
        "UserPatch": {
            "type": "object",
            "required": ["roles"],
            "additionalProperties": false,
            "properties": { "roles": roles },
        },
        "GrantBody": {
            "type": "object",
            "required": ["permission"],
            "additionalProperties": false,
            "properties": {
                "permission": { "type": "string", "enum": ["view", "standard", "admin"] },
                "expires": { "type": "string", "format": "date-time", "nullable": true },
            },
        },
        "RoleBody": {
            "type": "object",
            "required": ["permissions"],
            "additionalProperties": false,
            "properties": {
                "permissions": roles,
                "delegable": { "type": "boolean" },
            },
        },
        "AccountBody": {
            "type": "object",
            "required": ["id", "name"],
            "additionalProperties": false,
            "properties": { "id": { "type": "string" }, "name": { "type": "string" } },
        },
        "SsoConnection": {
            "type": "object",
            "required": ["issuer", "client_id", "client_secret"],
            "additionalProperties": false,
            "properties": {
                "issuer": { "type": "string", "format": "uri", "description": "https:// (http:// only to the loopback); its discovery document must answer" },
                "client_id": { "type": "string" },
                "client_secret": { "type": "string", "pattern": "^(env:[A-Z0-9_]+|file:/.+)$", "description": "Where the secret is read at each sign-in: env:NAME or file:/path. The secret itself is never sent or stored." },
                "scopes": { "type": "array", "items": { "type": "string" }, "description": "openid is always requested; default email profile" },
                "email_claim": { "type": "string", "default": "email" },
                "roles_claim": { "type": "string", "description": "The claim whose values role_map looks up (groups, roles)" },
                "role_map": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Claim value -> role; only delegable roles the org allows" },
                "default_roles": roles,
                "jit": { "type": "boolean", "default": true, "description": "Create unknown users of the org's domains at their first sign-in (within the seat cap)" },
                "enforce": { "type": "boolean", "default": false, "description": "Refuse password sign-in and password reset for the org's domains" },
                "idp_mfa": { "type": "boolean", "default": false, "description": "The provider's amr/acr count as a second factor" },
                "mfa_acr_values": roles,
                "userinfo": { "type": "boolean", "default": false },
            },
        },
        "ReviewBody": {
            "type": "object",
            "required": ["decision"],
            "additionalProperties": false,
            "properties": {
                "decision": { "type": "string", "enum": ["keep", "revoke"] },
                "note": { "type": "string", "maxLength": 1000 },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_documented_once_with_its_path_parameters() {
        let doc = build();
        assert_eq!(doc["openapi"], "3.0.3");
        let mut seen = std::collections::HashSet::new();
        for op in OPS {
            assert!(seen.insert(op.id), "duplicate operationId {}", op.id);
            let item = &doc["paths"][op.path][op.method.as_str().to_lowercase()];
            assert_eq!(item["operationId"], op.id);
            let params: Vec<&str> = item["parameters"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(params, path_params(op.path), "{}", op.id);
            if let Some(schema) = op.body {
                assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = build();
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/").skip(1) {
            let path = &piece[..piece.find('"').unwrap_or(piece.len())];
            let mut node = &doc;
            for key in path.split('/') {
                node = &node[key];
            }
            assert!(!node.is_null(), "dangling $ref #/{path}");
        }
    }
}
