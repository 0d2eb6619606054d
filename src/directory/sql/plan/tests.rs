use super::*;

fn problems(toml: &str) -> Vec<Check> {
    let data: DirectoryData = toml::from_str(toml).expect("test toml");
    plan(&data).1
}

fn exists(table: Table, key: &str, problem: &str) -> Check {
    let (key, problem) = (key.to_string(), problem.to_string());
    Check::Exists {
        table,
        key,
        problem,
    }
}

#[test]
fn references_outside_the_file_become_database_checks() {
    let checks = problems(
        r#"
        [[user]]
        email = "Bob@Acme.example"
        org = "acme2"
        roles = ["viewer"]
        [[grant]]
        user = "BOB@acme.example"
        account = "client-9"
        permission = "view"
        "#,
    );
    assert_eq!(
        checks,
        vec![
            exists(
                Table::Org,
                "acme2",
                r#"user "Bob@Acme.example": unknown org "acme2""#
            ),
            exists(
                Table::Role,
                "viewer",
                r#"user "Bob@Acme.example": unknown role "viewer""#
            ),
            exists(
                Table::Account,
                "client-9",
                r#"grant BOB@acme.example → client-9: unknown account "client-9""#
            ),
        ]
    );
}

#[test]
fn every_malformed_field_is_a_problem() {
    let checks = problems(
        r#"
        [[org]]
        id = "acme"
        name = "Acme"
        type = "reseller"
        status = "gone"
        [[org]]
        id = "acme"
        name = "Acme again"
        type = "reseller"
        [[user]]
        email = "nobody"
        org = "acme"
        status = "sleeping"
        [[user]]
        email = "a@acme.example"
        org = "acme"
        [[user]]
        email = "A@acme.example"
        org = "acme"
        [[account]]
        id = "c1"
        name = "C1"
        [[grant]]
        user = "a@acme.example"
        account = "c1"
        permission = "owner"
        expires = "tomorrow"
        "#,
    );
    let expected = [
        r#"org "acme": invalid status "gone" (expected pending, active, suspended, offboarded)"#,
        r#"org "acme": duplicate org id "acme""#,
        r#"user "nobody": invalid email (needs an '@')"#,
        r#"user "nobody": invalid status "sleeping" (expected invited, active, suspended, disabled)"#,
        r#"user "A@acme.example": duplicate email "a@acme.example""#,
        r#"grant a@acme.example → c1: invalid permission "owner" (expected view, standard, admin)"#,
        r#"grant a@acme.example → c1: invalid expires "tomorrow" (expected RFC 3339, e.g. 2026-12-31T00:00:00Z)"#,
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|p| Check::Problem(p.to_string()))
        .collect();
    assert_eq!(checks, expected);
}

#[test]
fn a_valid_file_plans_every_record() {
    let data: DirectoryData = toml::from_str(
        r#"
        [[role]]
        name = "r"
        permissions = ["b", "a", "b"]
        [[org]]
        id = "o"
        name = "O"
        type = "t"
        [[user]]
        email = " U@O.example "
        org = "o"
        roles = ["r"]
        [[account]]
        id = "c"
        name = "C"
        [[grant]]
        user = "u@o.example"
        account = "c"
        permission = "admin"
        expires = "2026-12-31T00:00:00+01:00"
        "#,
    )
    .expect("test toml");
    let (plan, checks) = plan(&data);
    assert_eq!(checks, vec![]);
    assert_eq!(
        plan.roles[0]
            .permissions
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(plan.orgs[0].status, OrgStatus::Active);
    assert_eq!(plan.users[0].email, "u@o.example");
    assert_eq!(plan.users[0].status, UserStatus::Active);
    assert_eq!(plan.grants[0].level, AccountLevel::Admin);
    assert_eq!(plan.grants[0].expires_at, Some(1_798_671_600));
}
