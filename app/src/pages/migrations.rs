//! Workload Migration (use case steps 11-17). The migration engine is not built yet; the screen
//! says so plainly rather than pretending.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{Card, PageHeader};

#[component]
pub fn WorkloadMigrationPage() -> impl IntoView {
    view! {
        <Title text="Workload Migration"/>
        <PageHeader title="Workload Migration" subtitle="Move production workloads from the shared pool onto a dedicated node without downtime."/>
        <Card title="Not available yet">
            <p class="text-sm text-slate-600 dark:text-slate-400">"Migrations to dedicated nodes are being built. Add a dedicated node first from Node Management."</p>
        </Card>
    }
}
