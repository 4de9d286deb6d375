//! Worker versioning: which Worker Deployment version this process is, which versioning behavior
//! each workflow type's runs get, and making a deployment's first version current so its first
//! worker is never idle (`worker.promote = "first"`). Every later promotion, ramp and drain is the
//! operator's, with the `temporal worker deployment` commands (docs/operations.md, "Deploying a
//! new version").

use std::collections::HashMap;
use std::time::Duration;

use temporalio_client::Connection;
use temporalio_client::tonic::{Code, Request};
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    DescribeWorkerDeploymentRequest, SetWorkerDeploymentCurrentVersionRequest,
};
use temporalio_common::worker::VersioningBehavior;
use tokio_util::sync::CancellationToken;

use super::settings::WorkerSettings;

/// `worker.build_id`, or `<crate version>-<CRC-32 of the running executable>`: a new binary is
/// a new version, and the version says which release it is. Hashing takes seconds for a large
/// binary: call once per process.
pub fn build_id(settings: &WorkerSettings) -> String {
    settings.build_id.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            env!("CARGO_PKG_VERSION"),
            temporalio_common::worker::build_id_from_current_exe()
        )
    })
}

/// Each workflow type's versioning behavior, from the catalog.
pub fn behaviors() -> HashMap<String, VersioningBehavior> {
    edgeflow_workflows::catalog::workflows()
        .into_iter()
        .map(|w| (w.name.to_string(), w.versioning))
        .collect()
}

/// What the worker found, or did, about its version being current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Promotion {
    /// The deployment had no current version; this one is now.
    Promoted,
    /// This version already was current.
    AlreadyCurrent,
    /// Another version is current: this worker gets no task until the operator moves it.
    OtherIsCurrent(String),
}

/// The server is busy or briefly away: a deployment's first moments, when every worker of it
/// registers at once, answer `ResourceExhausted` ("too many requests issued to Worker
/// Deployment").
fn busy(code: Code) -> bool {
    matches!(
        code,
        Code::ResourceExhausted | Code::Unavailable | Code::DeadlineExceeded
    )
}

/// How long the first worker keeps trying: the server knows a version only once one of its
/// pollers has reached it, which takes a moment after the worker starts.
const PROMOTE_FOR: Duration = Duration::from_secs(60);

/// Makes `build_id` the deployment's current version when it has none. Retries while the server
/// does not know the deployment or the version yet (the first polls are still on their way) and
/// when another worker changed the deployment at the same time (the conflict token).
pub async fn promote_if_none(
    connection: &Connection,
    namespace: &str,
    deployment: &str,
    build_id: &str,
    identity: &str,
    stop: &CancellationToken,
) -> anyhow::Result<Promotion> {
    let started = tokio::time::Instant::now();
    let mut service = connection.workflow_service();
    let retry = |what: String| {
        let waited = started.elapsed();
        async move {
            if waited > PROMOTE_FOR {
                anyhow::bail!("{what} for {} s", PROMOTE_FOR.as_secs());
            }
            tokio::select! {
                () = stop.cancelled() => anyhow::bail!("stopped before the version was current"),
                () = tokio::time::sleep(Duration::from_millis(500)) => Ok(()),
            }
        }
    };
    loop {
        let described = service
            .describe_worker_deployment(Request::new(DescribeWorkerDeploymentRequest {
                namespace: namespace.to_string(),
                deployment_name: deployment.to_string(),
            }))
            .await;
        let described = match described {
            Ok(d) => d.into_inner(),
            Err(status) if status.code() == Code::NotFound || busy(status.code()) => {
                retry(format!(
                    "the server did not describe deployment `{deployment}` ({})",
                    status.message()
                ))
                .await?;
                continue;
            }
            Err(status) => anyhow::bail!("describing deployment `{deployment}`: {status}"),
        };
        let current = described
            .worker_deployment_info
            .as_ref()
            .and_then(|i| i.routing_config.as_ref())
            .and_then(|r| r.current_deployment_version.as_ref())
            .map(|v| v.build_id.clone())
            .filter(|b| !b.is_empty());
        match current {
            Some(current) if current == build_id => return Ok(Promotion::AlreadyCurrent),
            Some(current) => return Ok(Promotion::OtherIsCurrent(current)),
            None => {}
        }
        let set = service
            .set_worker_deployment_current_version(Request::new(
                SetWorkerDeploymentCurrentVersionRequest {
                    namespace: namespace.to_string(),
                    deployment_name: deployment.to_string(),
                    build_id: build_id.to_string(),
                    conflict_token: described.conflict_token,
                    identity: identity.to_string(),
                    ..Default::default()
                },
            ))
            .await;
        match set {
            Ok(_) => return Ok(Promotion::Promoted),
            // The version's pollers have not reached every task queue yet, or another worker
            // changed the deployment since it was described: look again.
            Err(status)
                if matches!(
                    status.code(),
                    Code::NotFound | Code::FailedPrecondition | Code::Aborted
                ) || busy(status.code()) =>
            {
                retry(format!(
                    "the server refused version `{build_id}` ({})",
                    status.message()
                ))
                .await?;
            }
            Err(status) => anyhow::bail!("making `{build_id}` current: {status}"),
        }
    }
}
