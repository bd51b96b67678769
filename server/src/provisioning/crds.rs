//! Installing the platform's CRDs at start-up, so a fresh cluster needs no manual step.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, CustomResourceExt, ResourceExt};

use super::{Error, Result};
use crate::crd::{DedicatedNode, WorkloadMigration};

const FIELD_MANAGER: &str = "hexabase-server";
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Applies the CRDs (server-side apply: re-running is a no-op, and a newer schema replaces an
/// older one) and waits until the API server serves them.
pub async fn ensure_crds(client: Client) -> Result<()> {
    let api = Api::<CustomResourceDefinition>::all(client);
    for crd in [DedicatedNode::crd(), WorkloadMigration::crd()] {
        let name = crd.name_any();
        api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&crd)).await?;
        tokio::time::timeout(ESTABLISH_TIMEOUT, await_condition(api.clone(), &name, conditions::is_crd_established()))
            .await
            .map_err(|_| Error::CrdNotEstablished(name.clone()))??;
    }
    Ok(())
}
