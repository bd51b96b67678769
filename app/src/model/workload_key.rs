//! How a workload is named everywhere: in forms, plans, the custom resource and the screens.
//! A workspace may own several namespaces, so the namespace is part of the name:
//! `acme-production/Deployment/web`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::WorkloadKind;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct WorkloadKey {
    pub namespace: String,
    pub kind: WorkloadKind,
    pub name: String,
}

impl WorkloadKey {
    pub fn new(namespace: impl Into<String>, kind: WorkloadKind, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), kind, name: name.into() }
    }
}

impl fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.kind.as_str(), self.name)
    }
}

impl FromStr for WorkloadKey {
    type Err = String;

    /// `namespace/Kind/name`, each part non-empty; the kind is `Deployment` or `StatefulSet`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("\"{s}\" is not a workload: expected namespace/Kind/name, e.g. acme-production/Deployment/web.");
        let mut parts = s.trim().split('/');
        let (Some(namespace), Some(kind), Some(name), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let kind = WorkloadKind::parse(kind).ok_or_else(bad)?;
        if namespace.is_empty() || name.is_empty() {
            return Err(bad());
        }
        super::check_namespace(namespace)?;
        super::check_name(kind.as_str(), name)?;
        Ok(Self::new(namespace, kind, name))
    }
}

impl WorkloadKey {
    /// Parses a comma-separated list of keys (what the migration form posts), dropping repeats
    /// and keeping the order.
    pub fn parse_list(list: &str) -> Result<Vec<WorkloadKey>, String> {
        let mut out: Vec<WorkloadKey> = Vec::new();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let key: WorkloadKey = part.parse()?;
            if !out.contains(&key) {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// The keys joined as the form posts them.
    pub fn join(keys: &[WorkloadKey]) -> String {
        keys.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_namespace_and_round_trip() {
        let k: WorkloadKey = "shop/Deployment/web".parse().unwrap();
        assert_eq!(k, WorkloadKey::new("shop", WorkloadKind::Deployment, "web"));
        assert_eq!(k.to_string(), "shop/Deployment/web");
        assert_ne!(k, "other/Deployment/web".parse().unwrap(), "same name, other namespace: another workload");
    }

    #[test]
    fn malformed_keys_are_refused_with_the_expected_shape() {
        for bad in ["Deployment/web", "shop/Pod/web", "shop//web", "/Deployment/web", "a/Deployment/b/c", ""] {
            let e = bad.parse::<WorkloadKey>().unwrap_err();
            assert!(e.contains("namespace/Kind/name"), "{bad}: {e}");
        }
        assert!("Shop/Deployment/web".parse::<WorkloadKey>().unwrap_err().contains("not a valid namespace name"));
        assert!("shop/Deployment/w?b".parse::<WorkloadKey>().unwrap_err().contains("not a valid Deployment name"));
    }

    #[test]
    fn a_list_drops_repeats_and_keeps_order() {
        let keys = WorkloadKey::parse_list("a/Deployment/x, b/StatefulSet/y,a/Deployment/x,").unwrap();
        assert_eq!(WorkloadKey::join(&keys), "a/Deployment/x,b/StatefulSet/y");
        assert!(WorkloadKey::parse_list("a/Deployment/x,nope").is_err());
    }
}
