//! "The partner is directed to a role-specific dashboard": which dashboard a set of roles
//! gets, and what each one shows. Plain data and a pure choice, so tests can pin it down.

/// One dashboard: the role it is for, its heading and its panels (title, items).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Dashboard {
    /// The `data-dashboard` value tests look for.
    pub role: &'static str,
    pub heading: &'static str,
    pub intro: &'static str,
    pub panels: &'static [(&'static str, &'static [&'static str])],
}

/// In priority order: a user holding several roles gets the first dashboard that matches.
pub(super) const DASHBOARDS: &[Dashboard] = &[
    Dashboard {
        role: "owner-admin",
        heading: "Partner programme console",
        intro: "You run the partner programme: partner organisations, their admins and the programme's reports.",
        panels: &[
            (
                "Partner organisations",
                &[
                    "Registration requests awaiting approval",
                    "Active, suspended and offboarded partners",
                    "Seat caps and the roles each organisation may hand out",
                ],
            ),
            (
                "Programme reports",
                &["Pipeline by partner", "Logins and active users", "Access review"],
            ),
        ],
    },
    Dashboard {
        role: "partner-admin",
        heading: "Partner admin dashboard",
        intro: "You manage your organisation's access: your team, your deals and your client accounts.",
        panels: &[
            (
                "Team",
                &["Invite a colleague", "Suspend or remove a user", "Assign roles"],
            ),
            (
                "Deals",
                &["Registered deals", "Deals awaiting approval"],
            ),
            (
                "Client accounts",
                &["Who on your team can open which client account", "Temporary grants and their expiry"],
            ),
        ],
    },
    Dashboard {
        role: "partner-user",
        heading: "Partner dashboard",
        intro: "Your deals and the resources the programme shares with partners.",
        panels: &[
            ("Deals", &["Your open deals", "Register a new deal"]),
            (
                "Resources",
                &["Price lists", "Product training", "Marketing kit"],
            ),
        ],
    },
    Dashboard {
        role: "referral-partner",
        heading: "Referral dashboard",
        intro: "Share your referral links and follow the commissions they earn.",
        panels: &[
            ("Referral links", &["Your personal link", "Campaign links"]),
            (
                "Commissions",
                &["Earned this quarter", "Pending payout", "Payout history"],
            ),
        ],
    },
];

/// For roles that have no dashboard of their own.
pub(super) const GENERIC: Dashboard = Dashboard {
    role: "generic",
    heading: "Partner portal",
    intro: "Your roles have no dashboard of their own here; ask your partner admin for access.",
    panels: &[],
};

/// The dashboard for `roles`, by the priority of [`DASHBOARDS`].
pub(super) fn dashboard_for<S: AsRef<str>>(roles: &[S]) -> &'static Dashboard {
    DASHBOARDS
        .iter()
        .find(|dashboard| roles.iter().any(|role| role.as_ref() == dashboard.role))
        .unwrap_or(&GENERIC)
}

/// `X-Partner-Roles` is comma-separated; blanks around and between are ignored.
pub(super) fn parse_roles(header: &str) -> Vec<String> {
    header
        .split(',')
        .map(str::trim)
        .filter(|role| !role.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_choose_the_dashboard() {
        let cases: &[(&str, &str)] = &[
            ("owner-admin", "owner-admin"),
            ("partner-admin", "partner-admin"),
            ("partner-user", "partner-user"),
            ("referral-partner", "referral-partner"),
            ("partner-user,partner-admin", "partner-admin"),
            (" referral-partner , partner-user ", "partner-user"),
            ("partner-admin,owner-admin", "owner-admin"),
            ("auditor", "generic"),
            ("Partner-Admin", "generic"),
            ("partner-admins", "generic"),
            ("", "generic"),
            (",,", "generic"),
        ];
        for (header, expected) in cases {
            let roles = parse_roles(header);
            assert_eq!(dashboard_for(&roles).role, *expected, "{header:?}");
        }
    }

    #[test]
    fn every_dashboard_has_its_own_heading() {
        let mut headings: Vec<&str> = DASHBOARDS.iter().map(|d| d.heading).collect();
        headings.push(GENERIC.heading);
        let count = headings.len();
        headings.sort_unstable();
        headings.dedup();
        assert_eq!(headings.len(), count);
    }
}
