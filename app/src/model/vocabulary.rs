//! The product's vocabulary, defined once: the phases, steps, states, kinds and actions that the
//! custom resources store, the wire carries and the screens show. The custom resources in
//! `server::crd` use these very enums (their JSON Schema comes from here, behind `ssr`), so a
//! state is never a string that two places spell on their own.
//!
//! Each enum has two spellings, both from one table: `as_str()` is its name on the wire and in
//! the cluster (serde's, `CapacityReserved`), `label()` the words a person reads ("Capacity
//! reserved"). Nothing else turns a state into text.

use serde::{Deserialize, Serialize};

/// Defines a closed set of names with their wire name (the variant's) and their label.
macro_rules! vocabulary {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $label:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name on the wire and in the cluster, as serde writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)+
                }
            }

            /// The words a person reads.
            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            /// The value whose wire name is `s`.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.label())
            }
        }
    };
}

/// How a state looks on screen: its badge colour, chosen by what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Busy,
    Bad,
    Neutral,
}

vocabulary! {
    /// Where a dedicated node's order stands (`DedicatedNode.status.phase`).
    #[derive(Default)]
    pub enum NodePhase {
        #[default]
        Pending => "Pending",
        Provisioning => "Provisioning",
        Ready => "Ready",
        Failed => "Failed",
        Deleting => "Deleting",
    }
}

impl NodePhase {
    /// Ready and Failed: nothing more happens on its own.
    pub fn is_settled(self) -> bool {
        matches!(self, NodePhase::Ready | NodePhase::Failed)
    }

    pub fn tone(self) -> Tone {
        match self {
            NodePhase::Ready => Tone::Good,
            NodePhase::Failed => Tone::Bad,
            NodePhase::Pending | NodePhase::Provisioning | NodePhase::Deleting => Tone::Busy,
        }
    }
}

vocabulary! {
    /// The provisioning steps, in the order they run.
    pub enum StepName {
        CapacityReserved => "Capacity reserved",
        Booting => "Booting",
        Registering => "Registering with the cluster",
        Ready => "Ready",
    }
}

vocabulary! {
    /// Where one provisioning step stands.
    #[derive(Default)]
    pub enum StepState {
        #[default]
        Pending => "waiting",
        Running => "in progress",
        Done => "done",
        Failed => "failed",
    }
}

vocabulary! {
    /// Where a workload migration stands (`WorkloadMigration.status.phase`).
    #[derive(Default)]
    pub enum MigrationState {
        #[default]
        Pending => "Pending",
        Running => "Running",
        Paused => "Paused",
        WaitingForApproval => "Waiting for approval",
        Succeeded => "Succeeded",
        RolledBack => "Rolled back",
        Failed => "Failed",
    }
}

impl MigrationState {
    /// Nothing more happens until the user acts (retry) or never again.
    pub fn is_final(self) -> bool {
        matches!(self, MigrationState::Succeeded | MigrationState::RolledBack | MigrationState::Failed)
    }

    /// Nothing more happens without the user: finished, rolled back, paused or awaiting approval.
    pub fn is_settled(self) -> bool {
        self.is_final() || matches!(self, MigrationState::Paused | MigrationState::WaitingForApproval)
    }

    pub fn tone(self) -> Tone {
        match self {
            MigrationState::Succeeded => Tone::Good,
            MigrationState::RolledBack | MigrationState::Failed => Tone::Bad,
            MigrationState::Pending | MigrationState::Running | MigrationState::Paused | MigrationState::WaitingForApproval => Tone::Busy,
        }
    }
}

vocabulary! {
    /// Where one workload of a migration stands.
    #[derive(Default)]
    pub enum WorkloadState {
        #[default]
        Pending => "Waiting",
        Moving => "Moving",
        Moved => "Moved",
        RollingBack => "Rolling back",
        RolledBack => "Rolled back",
        Failed => "Failed",
    }
}

impl WorkloadState {
    pub fn tone(self) -> Tone {
        match self {
            WorkloadState::Moved => Tone::Good,
            WorkloadState::RolledBack | WorkloadState::Failed => Tone::Bad,
            WorkloadState::Moving | WorkloadState::RollingBack => Tone::Busy,
            WorkloadState::Pending => Tone::Neutral,
        }
    }
}

vocabulary! {
    /// The workload kinds a migration moves.
    pub enum WorkloadKind {
        Deployment => "Deployment",
        StatefulSet => "StatefulSet",
    }
}

vocabulary! {
    /// What a user can ask of a migration that waits for them.
    pub enum ControlAction {
        Resume => "Resume now",
        ResumeAt => "Resume at a set time",
        ApproveNext => "Run next phase",
        Retry => "Retry migration",
    }
}

vocabulary! {
    /// What a member may do in a workspace. Owners and admins manage dedicated nodes;
    /// members also migrate workloads; viewers only look.
    #[derive(Default)]
    pub enum Role {
        Owner => "owner",
        Admin => "admin",
        Member => "member",
        #[default]
        Viewer => "viewer",
    }
}

/// A kind of change a role may or may not make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Add, retry, delete or dismiss dedicated nodes.
    ManageNodes,
    /// Start a migration and steer it (resume, approve the next phase, retry).
    Migrate,
}

impl Role {
    /// How memberships store it.
    pub fn as_db(self) -> &'static str {
        self.label()
    }

    /// An unknown stored role is a viewer: the least that can be granted.
    pub fn from_db(s: &str) -> Role {
        Role::ALL.iter().copied().find(|r| r.as_db() == s).unwrap_or(Role::Viewer)
    }

    pub fn may(self, p: Permission) -> bool {
        match p {
            Permission::ManageNodes => matches!(self, Role::Owner | Role::Admin),
            Permission::Migrate => matches!(self, Role::Owner | Role::Admin | Role::Member),
        }
    }

    /// Why this role may not, in words for the person who has it.
    pub fn refusal(self, p: Permission) -> String {
        let what = match p {
            Permission::ManageNodes => "add, retry or delete dedicated nodes",
            Permission::Migrate => "start or steer migrations",
        };
        format!("Your role in this workspace ({}) cannot {what}; an owner or admin can.", self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire name is serde's: the table and the derive cannot drift apart.
    fn wire_names_are_serdes<T: Serialize + Copy + std::fmt::Debug + PartialEq>(all: &[T], as_str: fn(T) -> &'static str, parse: fn(&str) -> Option<T>) {
        for &v in all {
            assert_eq!(serde_json::to_value(v).unwrap(), serde_json::json!(as_str(v)), "{v:?}");
            assert_eq!(parse(as_str(v)), Some(v));
        }
    }

    #[test]
    fn every_vocabulary_round_trips_through_its_wire_name() {
        wire_names_are_serdes(NodePhase::ALL, NodePhase::as_str, NodePhase::parse);
        wire_names_are_serdes(StepName::ALL, StepName::as_str, StepName::parse);
        wire_names_are_serdes(StepState::ALL, StepState::as_str, StepState::parse);
        wire_names_are_serdes(MigrationState::ALL, MigrationState::as_str, MigrationState::parse);
        wire_names_are_serdes(WorkloadState::ALL, WorkloadState::as_str, WorkloadState::parse);
        wire_names_are_serdes(WorkloadKind::ALL, WorkloadKind::as_str, WorkloadKind::parse);
        wire_names_are_serdes(ControlAction::ALL, ControlAction::as_str, ControlAction::parse);
        wire_names_are_serdes(Role::ALL, Role::as_str, Role::parse);
        assert_eq!(StepName::CapacityReserved.label(), "Capacity reserved");
        assert_eq!(NodePhase::parse("Unknown"), None);
    }

    #[test]
    fn roles_grant_what_their_names_say() {
        use Permission::*;
        let grants = |r: Role| (r.may(ManageNodes), r.may(Migrate));
        assert_eq!(grants(Role::Owner), (true, true));
        assert_eq!(grants(Role::Admin), (true, true));
        assert_eq!(grants(Role::Member), (false, true));
        assert_eq!(grants(Role::Viewer), (false, false));
        assert_eq!(Role::from_db("owner"), Role::Owner);
        assert_eq!(Role::from_db("superuser"), Role::Viewer, "unknown roles get the least");
        assert!(Role::Viewer.refusal(Migrate).contains("(viewer) cannot start or steer migrations"));
    }

    #[test]
    fn settled_states_are_the_ones_that_wait_for_a_person() {
        let settled: Vec<_> = MigrationState::ALL.iter().filter(|s| s.is_settled()).collect();
        assert_eq!(settled.len(), 5);
        assert!(!MigrationState::Running.is_settled() && !MigrationState::Pending.is_settled());
        assert!(NodePhase::Ready.is_settled() && NodePhase::Failed.is_settled() && !NodePhase::Deleting.is_settled());
    }
}
