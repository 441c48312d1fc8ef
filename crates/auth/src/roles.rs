//! Roles, permissions and the one table that relates them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::AuthError;

/// The role carried by an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Loan origination systems: classify and embed texts.
    Originator,
    /// Human reviewers: claim, label, skip and release review items (their own claims only).
    Reviewer,
    /// Risk analysts: aggregates, reports and exports.
    Analyst,
    /// Operators: everything, including keys, thresholds and reloads.
    Admin,
}

impl Role {
    /// Every role, in a stable order (useful to generate role-matrix tests).
    pub const ALL: [Role; 4] = [Role::Originator, Role::Reviewer, Role::Analyst, Role::Admin];

    /// The lower-case name used on the CLI, in the database and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Originator => "originator",
            Role::Reviewer => "reviewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "originator" => Ok(Role::Originator),
            "reviewer" => Ok(Role::Reviewer),
            "analyst" => Ok(Role::Analyst),
            "admin" => Ok(Role::Admin),
            _ => Err(AuthError::InvalidRole(s.to_string())),
        }
    }
}

/// Endpoint classes. Every authenticated HTTP route maps to exactly one permission; the
/// route → permission mapping lives with the routes (service crate), the permission → role
/// decision lives here, in [`allowed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// `POST /v1/classify`.
    Classify,
    /// `POST /v1/embed`.
    Embed,
    /// `POST /v1/review/claim`, `/v1/review/{id}/label|skip|release` — the caller's own claims.
    ReviewWork,
    /// `GET /v1/review/stats` (queue depths; no texts).
    ReviewStats,
    /// Reviewer agreement / kappa reports and the review audit log (read).
    ReviewReports,
    /// `GET /v1/aggregate` and other portfolio read-outs.
    Aggregate,
    /// Exports: labels as a training set, portfolio and batch outputs.
    Export,
    /// Loading portfolios (ingest) and starting batch reclassification jobs.
    PortfolioWrite,
    /// `GET /metrics` when the operator chooses to protect it.
    Metrics,
    /// Create, list and revoke API keys.
    ManageKeys,
    /// Change decision thresholds, QA/double-review rates and other runtime settings.
    Settings,
    /// Reload model, taxonomy and indexes; manage the exemplar store directly.
    Reload,
}

impl Permission {
    /// Every permission, in a stable order.
    pub const ALL: [Permission; 12] = [
        Permission::Classify,
        Permission::Embed,
        Permission::ReviewWork,
        Permission::ReviewStats,
        Permission::ReviewReports,
        Permission::Aggregate,
        Permission::Export,
        Permission::PortfolioWrite,
        Permission::Metrics,
        Permission::ManageKeys,
        Permission::Settings,
        Permission::Reload,
    ];

    /// snake_case name (matches the serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Classify => "classify",
            Permission::Embed => "embed",
            Permission::ReviewWork => "review_work",
            Permission::ReviewStats => "review_stats",
            Permission::ReviewReports => "review_reports",
            Permission::Aggregate => "aggregate",
            Permission::Export => "export",
            Permission::PortfolioWrite => "portfolio_write",
            Permission::Metrics => "metrics",
            Permission::ManageKeys => "manage_keys",
            Permission::Settings => "settings",
            Permission::Reload => "reload",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role matrix: which non-admin role holds which permission. Admin holds every permission
/// and is not listed. This is the single source of truth; [`allowed`] reads it.
///
/// | permission      | originator | reviewer | analyst |
/// |-----------------|:----------:|:--------:|:-------:|
/// | classify        | ✓          |          |         |
/// | embed           | ✓          |          |         |
/// | review_work     |            | ✓        |         |
/// | review_stats    |            | ✓        | ✓       |
/// | review_reports  |            |          | ✓       |
/// | aggregate       |            |          | ✓       |
/// | export          |            |          | ✓       |
/// | portfolio_write |            |          | ✓       |
/// | metrics         |            |          | ✓       |
/// | manage_keys     |            |          |         |
/// | settings        |            |          |         |
/// | reload          |            |          |         |
pub const ROLE_TABLE: &[(Permission, &[Role])] = &[
    (Permission::Classify, &[Role::Originator]),
    (Permission::Embed, &[Role::Originator]),
    (Permission::ReviewWork, &[Role::Reviewer]),
    (Permission::ReviewStats, &[Role::Reviewer, Role::Analyst]),
    (Permission::ReviewReports, &[Role::Analyst]),
    (Permission::Aggregate, &[Role::Analyst]),
    (Permission::Export, &[Role::Analyst]),
    (Permission::PortfolioWrite, &[Role::Analyst]),
    (Permission::Metrics, &[Role::Analyst]),
    (Permission::ManageKeys, &[]),
    (Permission::Settings, &[]),
    (Permission::Reload, &[]),
];

/// May `role` use endpoints of class `permission`? Admin may use everything.
pub fn allowed(role: Role, permission: Permission) -> bool {
    if role == Role::Admin {
        return true;
    }
    ROLE_TABLE
        .iter()
        .find(|(p, _)| *p == permission)
        .is_some_and(|(_, roles)| roles.contains(&role))
}

/// May a caller with `role`, authenticated as `principal_name`, act as reviewer `reviewer`?
/// Reviewers act only as themselves (their key name is their reviewer id); admins may act
/// for anyone; other roles never do review work.
pub fn may_act_as_reviewer(role: Role, principal_name: &str, reviewer: &str) -> bool {
    match role {
        Role::Admin => true,
        Role::Reviewer => principal_name == reviewer,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_has_exactly_one_row() {
        for p in Permission::ALL {
            let rows = ROLE_TABLE.iter().filter(|(q, _)| *q == p).count();
            assert_eq!(rows, 1, "permission {p} must appear once in ROLE_TABLE");
        }
        assert_eq!(ROLE_TABLE.len(), Permission::ALL.len());
    }

    #[test]
    fn role_matrix() {
        use Permission as P;
        use Role as R;
        // Written out independently of ROLE_TABLE so a change to either is caught.
        let expected: &[(R, &[P])] = &[
            (R::Originator, &[P::Classify, P::Embed]),
            (R::Reviewer, &[P::ReviewWork, P::ReviewStats]),
            (
                R::Analyst,
                &[
                    P::ReviewStats,
                    P::ReviewReports,
                    P::Aggregate,
                    P::Export,
                    P::PortfolioWrite,
                    P::Metrics,
                ],
            ),
            (R::Admin, &Permission::ALL),
        ];
        for (role, perms) in expected {
            for p in Permission::ALL {
                assert_eq!(
                    allowed(*role, p),
                    perms.contains(&p),
                    "role {role} × permission {p}"
                );
            }
        }
    }

    #[test]
    fn role_parse_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        assert_eq!(" Admin ".parse::<Role>().unwrap(), Role::Admin);
        assert!(matches!(
            "root".parse::<Role>(),
            Err(AuthError::InvalidRole(s)) if s == "root"
        ));
    }

    #[test]
    fn reviewers_act_only_as_themselves() {
        assert!(may_act_as_reviewer(Role::Reviewer, "r1", "r1"));
        assert!(!may_act_as_reviewer(Role::Reviewer, "r1", "r2"));
        assert!(may_act_as_reviewer(Role::Admin, "ops", "r2"));
        assert!(!may_act_as_reviewer(Role::Analyst, "r1", "r1"));
        assert!(!may_act_as_reviewer(Role::Originator, "r1", "r1"));
    }
}
