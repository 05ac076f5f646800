//! Who is asking, and what they may do (DESIGN §13.5). Plain data: the edge turns a
//! credential into a [`Principal`]; audit records and tasks name it.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// A role, granted per namespace; `admin` spans every namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Operator,
    Developer,
    Viewer,
    Agent,
}

/// One row of the role table of DESIGN §13.5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read tasks, runs, agents, events, the tree and metrics.
    Read,
    /// Submit and cancel tasks, start and cancel runs.
    Submit,
    /// Create and update workflow definitions.
    WriteWorkflows,
    /// Approve or reject pauses, patch running runs.
    PatchRuns,
    /// Register, update and remove native, http and llm agents.
    ManageAgents,
    /// Register and update `process` agents: they run a command on the node.
    ManageProcessAgents,
    /// Call the model gateways.
    UseModels,
    /// Keys, users, audit, namespaces.
    Administer,
    /// Start scans: a scan reads any file under `scan.allowed_dirs` on the node's disk
    /// and stores what it found, so it is the administrators', like `process` agents.
    StartScans,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Admin, Role::Operator, Role::Developer, Role::Viewer, Role::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
            Role::Agent => "agent",
        }
    }

    /// The role table, one match: a new permission must be placed for every role.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        use Role::*;
        match permission {
            Read => true,
            Submit | UseModels => matches!(self, Admin | Operator | Developer | Agent),
            WriteWorkflows => matches!(self, Admin | Operator | Developer),
            PatchRuns | ManageAgents => matches!(self, Admin | Operator),
            ManageProcessAgents | Administer | StartScans => self == Admin,
        }
    }

    /// Viewers read tasks without their inputs and outputs.
    pub fn sees_payloads(self) -> bool {
        self != Role::Viewer
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown role '{0}': expected admin, operator, developer, viewer or agent")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Stable name of the caller as recorded on tasks and audit records: `key:<id>` for an
    /// API key, `jwt:<sub>` for a token.
    pub subject: String,
    pub role: Role,
    /// The namespace the credential is bound to; `None` for admins spanning all.
    pub namespace: Option<String>,
}

impl Principal {
    pub fn may(&self, permission: Permission) -> bool {
        self.role.allows(permission)
    }

    /// Whether the caller may see or touch what lives in `namespace`.
    pub fn reaches(&self, namespace: &str) -> bool {
        match &self.namespace {
            None => self.role == Role::Admin,
            Some(own) => own == namespace,
        }
    }
}

/// A stored API key (table `api_keys`). The key itself is shown once when created and
/// never stored: only the SHA-256 of its text, found by its public id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The public part of the key, its primary key.
    pub id: String,
    /// SHA-256 of the whole key text.
    pub sha256: [u8; 32],
    /// What the key is for, as its creator named it.
    pub name: String,
    pub role: Role,
    /// `None`: every namespace (admins only).
    pub namespace: Option<String>,
    /// The subject of who created it.
    pub created_by: Option<String>,
    pub created_at: SystemTime,
    pub expires_at: Option<SystemTime>,
    pub revoked_at: Option<SystemTime>,
}

impl ApiKeyRecord {
    /// The caller the key stands for: `key:<id>`.
    pub fn principal(&self) -> Principal {
        Principal { subject: format!("key:{}", self.id), role: self.role, namespace: self.namespace.clone() }
    }

    /// Whether it authenticates at `now`. A revocation wins over an expiry: it is the
    /// deliberate act of the two.
    pub fn state(&self, now: SystemTime) -> KeyState {
        if self.revoked_at.is_some_and(|at| at <= now) {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Active,
    Revoked,
    Expired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Revoked => "revoked",
            KeyState::Expired => "expired",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_table_matches_the_design() {
        use Permission::*;
        let table: [(Permission, [bool; 5]); 9] = [
            (Read, [true, true, true, true, true]),
            (Submit, [true, true, true, false, true]),
            (WriteWorkflows, [true, true, true, false, false]),
            (PatchRuns, [true, true, false, false, false]),
            (ManageAgents, [true, true, false, false, false]),
            (ManageProcessAgents, [true, false, false, false, false]),
            (UseModels, [true, true, true, false, true]),
            (Administer, [true, false, false, false, false]),
            (StartScans, [true, false, false, false, false]),
        ];
        for (permission, expected) in table {
            for (role, allowed) in Role::ALL.into_iter().zip(expected) {
                assert_eq!(role.allows(permission), allowed, "{role} / {permission:?}");
            }
        }
    }

    #[test]
    fn roles_round_trip_and_unknown_names_are_refused() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert_eq!("root".parse::<Role>(), Err(UnknownRole("root".into())));
    }

    #[test]
    fn namespaces_isolate_everyone_but_unbound_admins() {
        let dev =
            Principal { subject: "key:a".into(), role: Role::Developer, namespace: Some("team-a".into()) };
        assert!(dev.reaches("team-a") && !dev.reaches("team-b"));
        let admin = Principal { subject: "key:b".into(), role: Role::Admin, namespace: None };
        assert!(admin.reaches("team-b"));
        let unbound_viewer = Principal { subject: "key:c".into(), role: Role::Viewer, namespace: None };
        assert!(!unbound_viewer.reaches("team-a"));
    }
}
