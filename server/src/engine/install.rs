//! The platform's own objects in the cluster, installed at start-up so a fresh cluster needs
//! no manual step: the custom resources (generated from `crate::crd`), the dedicated priority
//! class and the admission policy that guards it (`deploy/platform/*.yaml`, compiled in).
//! Server-side apply: re-running is a no-op, a newer definition replaces an older one.

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, CustomResourceExt, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::crd::{DedicatedNode, WorkloadMigration};

const FIELD_MANAGER: &str = "hexabase-server";
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

const PRIORITY_CLASS: &str = include_str!("../../../deploy/platform/priorityclass.yaml");
const ADMISSION: &str = include_str!("../../../deploy/platform/admission.yaml");

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the CRD {0} was not served in time")]
    NotServed(String),
    #[error("waiting for a CRD: {0}")]
    Wait(#[from] kube::runtime::wait::Error),
    #[error("deploy/platform manifest {0}: {1}")]
    Manifest(&'static str, serde_yaml::Error),
}

/// The manifests of `deploy/platform`, one object per YAML document.
fn documents(yaml: &'static str) -> impl Iterator<Item = &'static str> {
    yaml.split("\n---\n").filter(|d| d.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')))
}

fn parse<K: DeserializeOwned>(file: &'static str, doc: &'static str) -> Result<K, InstallError> {
    serde_yaml::from_str(doc).map_err(|e| InstallError::Manifest(file, e))
}

async fn apply<K>(client: &Client, obj: &K) -> Result<(), InstallError>
where
    K: Resource<Scope = k8s_openapi::ClusterResourceScope, DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    Api::<K>::all(client.clone()).patch(&obj.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj)).await?;
    Ok(())
}

/// Installs everything and waits until the custom resources are served.
pub async fn ensure_platform(client: Client) -> Result<(), InstallError> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for crd in [DedicatedNode::crd(), WorkloadMigration::crd()] {
        let name = crd.name_any();
        apply(&client, &crd).await?;
        tokio::time::timeout(ESTABLISH_TIMEOUT, await_condition(crds.clone(), &name, conditions::is_crd_established()))
            .await
            .map_err(|_| InstallError::NotServed(name.clone()))??;
    }
    // Established is not yet served: the API server answers 429 "storage is (re)initializing"
    // for a moment after. Wait until both resources list.
    wait_served(Api::<DedicatedNode>::all(client.clone()), "dedicatednodes.hexabase.ai").await?;
    wait_served(Api::<WorkloadMigration>::all(client.clone()), "workloadmigrations.hexabase.ai").await?;
    apply::<PriorityClass>(&client, &parse("priorityclass.yaml", PRIORITY_CLASS)?).await?;
    let (policies, bindings) = admission()?;
    for policy in &policies {
        apply(&client, policy).await?;
    }
    for binding in &bindings {
        apply(&client, binding).await?;
    }
    Ok(())
}

/// The admission policies and their bindings of `deploy/platform/admission.yaml`.
fn admission() -> Result<(Vec<ValidatingAdmissionPolicy>, Vec<ValidatingAdmissionPolicyBinding>), InstallError> {
    #[derive(serde::Deserialize)]
    struct Kind {
        kind: String,
    }
    let (mut policies, mut bindings) = (Vec::new(), Vec::new());
    for doc in documents(ADMISSION) {
        match parse::<Kind>("admission.yaml", doc)?.kind.as_str() {
            "ValidatingAdmissionPolicyBinding" => bindings.push(parse("admission.yaml", doc)?),
            _ => policies.push(parse("admission.yaml", doc)?),
        }
    }
    Ok((policies, bindings))
}

async fn wait_served<K>(api: Api<K>, name: &str) -> Result<(), InstallError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + ESTABLISH_TIMEOUT;
    while api.list_metadata(&ListParams::default().limit(1)).await.is_err() {
        if tokio::time::Instant::now() >= deadline {
            return Err(InstallError::NotServed(name.to_string()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_manifests_parse_into_their_types() {
        let pc: PriorityClass = parse("priorityclass.yaml", PRIORITY_CLASS).unwrap();
        assert_eq!(pc.name_any(), crate::cluster::labels::DEDICATED_PRIORITY_CLASS);
        assert_eq!((pc.value, pc.preemption_policy.as_deref(), pc.global_default), (Some(0), Some("Never"), Some(false)));
        let (policies, bindings) = admission().unwrap();
        assert_eq!((policies.len(), bindings.len()), (2, 2));
        for (policy, binding) in policies.iter().zip(&bindings) {
            assert_eq!(binding.spec.policy_name, policy.name_any(), "each policy is bound");
        }
        let first = policies[0].spec.clone().unwrap().validations.unwrap();
        assert!(first[0].expression.contains(crate::cluster::labels::DEDICATED_PRIORITY_CLASS));
    }
}
