//! An operator's client over gRPC: `start`, `signal`, `status`, and the `health` probe.
//!
//! Inputs are JSON given inline or as `@FILE`; output is JSON on stdout so it pipes into `jq`.
//! Workflows are addressed by type name, so these commands work for any workflow on the task
//! queue, including ones written in other SDKs.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use temporalio_client::NamespacedClient;
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::errors::WorkflowStartError;
use temporalio_client::{
    Client, ClientOptions, UntypedSignal, UntypedWorkflow, WorkflowDescribeOptions,
    WorkflowExecutionStatus, WorkflowGetResultOptions, WorkflowHandle, WorkflowIdReusePolicy,
    WorkflowSignalOptions, WorkflowStartOptions,
};
use temporalio_common::data_converters::{
    RawValue, SerializationContextData, WorkflowSerializationContext,
};

use crate::codec::EncryptionCodec;
use crate::payload::{json_payload, payload_json};
use crate::settings::Settings;

/// Reads `--input`: inline JSON, or `@path` to read JSON from a file; the text as given.
pub fn read_input(arg: &str) -> anyhow::Result<String> {
    match arg.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading --input file {path}"))
        }
        None => Ok(arg.to_string()),
    }
}

/// Refuses, before anything is sent, input the worker would refuse: the same rules and field
/// paths. Workflows and messages the catalog does not know (another SDK's) are sent unchecked.
fn check(
    check: Option<edgeflow_workflows::catalog::Check>,
    what: &str,
    text: &str,
) -> anyhow::Result<()> {
    match check.map(|check| check(text.as_bytes())) {
        Some(Err(e)) => bail!("{what} is invalid, nothing was sent: {e}"),
        _ => Ok(()),
    }
}

/// The operator's client: with `[encryption]` keys, it encrypts what it sends (inputs, signals,
/// schedules' inputs) and decrypts what it reads (results, failures), like the worker.
pub async fn client(settings: &Settings) -> anyhow::Result<Client> {
    Ok(client_and_codec(settings).await?.0)
}

/// [`client`], and the codec on its data converter when encryption is on.
pub async fn client_and_codec(
    settings: &Settings,
) -> anyhow::Result<(Client, Option<EncryptionCodec>)> {
    let (data_converter, codec) = crate::codec::data_converter(&settings.encryption)?;
    let identity = format!("edgeflow-cli-{}", std::process::id());
    let (connection, _) = crate::connection::connect(&settings.temporal, &identity, None).await?;
    let client = Client::new(
        connection,
        ClientOptions::new(settings.temporal.namespace.clone())
            .data_converter(data_converter)
            .build(),
    )
    .context("creating the Temporal client")?;
    Ok((client, codec))
}

fn default_task_queue(settings: &Settings) -> anyhow::Result<String> {
    settings
        .workflow_task_queue()
        .map(str::to_string)
        .context("no configured task queue runs workflows; pass --task-queue")
}

pub async fn start(
    settings: Settings,
    workflow: String,
    input: String,
    id: Option<String>,
    task_queue: Option<String>,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    let text = read_input(&input)?;
    let known = edgeflow_workflows::catalog::find(&workflow);
    check(
        known.as_ref().map(|w| w.check_input),
        &format!("the input of {workflow}"),
        &text,
    )?;
    let input: serde_json::Value =
        serde_json::from_str(&text).context("--input is not valid JSON")?;
    let task_queue = match task_queue {
        Some(q) => q,
        None => default_task_queue(&settings)?,
    };
    // A workflow about one business object (an order) takes its id from it, so starting the same
    // order twice finds the first run instead of recording the order twice.
    let natural = known.as_ref().and_then(|w| w.natural_id(&input));
    let id = id
        .or_else(|| natural.clone())
        .unwrap_or_else(|| format!("{workflow}-{}", uuid::Uuid::new_v4().simple()));
    let client = client(&settings).await?;
    let mut options = WorkflowStartOptions::new(task_queue.clone(), id.clone()).build();
    if natural.as_deref() == Some(id.as_str()) {
        options.id_reuse_policy = WorkflowIdReusePolicy::RejectDuplicate;
    }
    let started = client
        .start_workflow(
            UntypedWorkflow::new(workflow.clone()),
            RawValue::new(vec![json_payload(&input)]),
            options,
        )
        .await;
    let handle = match started {
        Ok(handle) => handle,
        Err(WorkflowStartError::AlreadyStarted { .. })
            if natural.as_deref() == Some(id.as_str()) =>
        {
            let existing = client.get_workflow_handle::<UntypedWorkflow>(id.clone());
            if first_input(&existing).await? != input {
                bail!(
                    "{id} already exists with a different input: the same {workflow} id cannot be \
                     used twice (`edgeflow status {id}` shows it)"
                );
            }
            eprintln!(
                "{id} already exists with this input: the same {workflow}, not started again"
            );
            existing
        }
        Err(e) => {
            return Err(e).with_context(|| format!("starting workflow {workflow} with id {id}"));
        }
    };
    let run_id = handle.run_id().unwrap_or_default().to_string();
    if !wait {
        print_json(&serde_json::json!({
            "workflow_id": id, "run_id": run_id, "workflow_type": workflow, "task_queue": task_queue,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("started {workflow} as {id} (run {run_id}); waiting for the result");
    match handle.get_result(WorkflowGetResultOptions::default()).await {
        Ok(result) => {
            print_json(&payload_json(&result.payloads));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            print_json(&serde_json::json!({
                "workflow_id": id, "run_id": run_id, "status": "failed", "error": describe_result_error(&e),
            }));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The input a run was started with, from its first history event.
async fn first_input(
    handle: &WorkflowHandle<Client, UntypedWorkflow>,
) -> anyhow::Result<serde_json::Value> {
    use futures_util::StreamExt;
    use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
    let mut history = handle.fetch_history(Default::default());
    let first = history
        .next()
        .await
        .context("the run has no history")?
        .context("reading the run's history")?;
    let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) = first.attributes
    else {
        bail!("the run's first event is not its start");
    };
    // History holds payloads as Temporal stores them: encrypted when encryption is on.
    let input = handle
        .client()
        .data_converter()
        .codec()
        .decode(
            &SerializationContextData::Workflow(WorkflowSerializationContext::new()),
            started.input.map(|p| p.payloads).unwrap_or_default(),
        )
        .await
        .context("decrypting the run's input")?;
    Ok(payload_json(&input))
}

fn describe_result_error(e: &WorkflowGetResultError) -> String {
    match e {
        WorkflowGetResultError::Failed(f) => {
            // The innermost cause is the one a human can act on. Each level is read from the
            // decoded error, not the failure's `cause` field: with encryption on, the messages
            // there are the placeholder "Encoded failure".
            let mut message = f.failure().message.clone();
            let mut cause = f.cause();
            while let Some(c) = cause {
                if !c.failure().message.is_empty() {
                    message = format!("{message}: {}", c.failure().message);
                }
                cause = c.cause();
            }
            message
        }
        other => other.to_string(),
    }
}

pub async fn signal(
    settings: Settings,
    id: String,
    name: String,
    input: String,
) -> anyhow::Result<ExitCode> {
    let text = read_input(&input)?;
    let client = client(&settings).await?;
    let handle = client.get_workflow_handle::<UntypedWorkflow>(id.clone());
    let workflow_type = handle
        .describe(WorkflowDescribeOptions::default())
        .await
        .with_context(|| format!("describing workflow {id}"))?
        .workflow_type()
        .to_string();
    let known = edgeflow_workflows::catalog::find(&workflow_type);
    check(
        known.and_then(|w| w.message_check(&name)),
        &format!("the payload of {workflow_type}'s signal {name}"),
        &text,
    )?;
    let input: serde_json::Value =
        serde_json::from_str(&text).context("--input is not valid JSON")?;
    handle
        .signal(
            UntypedSignal::new(name.clone()),
            RawValue::new(vec![json_payload(&input)]),
            WorkflowSignalOptions::default(),
        )
        .await
        .with_context(|| format!("signalling {name} to workflow {id}"))?;
    print_json(&serde_json::json!({ "workflow_id": id, "signal": name, "sent": true }));
    Ok(ExitCode::SUCCESS)
}

pub async fn status(settings: Settings, id: String) -> anyhow::Result<ExitCode> {
    let client = client(&settings).await?;
    let handle = client.get_workflow_handle::<UntypedWorkflow>(id.clone());
    let description = handle
        .describe(WorkflowDescribeOptions::default())
        .await
        .with_context(|| format!("describing workflow {id}"))?;
    let status = description.status();
    let mut out = serde_json::json!({
        "workflow_id": id,
        "run_id": description.run_id(),
        "workflow_type": description.workflow_type(),
        "task_queue": description.task_queue(),
        "status": status_name(status),
        "history_length": description.history_length(),
    });
    if status == WorkflowExecutionStatus::Completed {
        let result = handle
            .get_result(WorkflowGetResultOptions::default())
            .await
            .context("reading the result")?;
        out["result"] = payload_json(&result.payloads);
    } else if status == WorkflowExecutionStatus::Failed
        && let Err(e) = handle.get_result(WorkflowGetResultOptions::default()).await
    {
        out["error"] = serde_json::Value::String(describe_result_error(&e));
    }
    print_json(&out);
    Ok(ExitCode::SUCCESS)
}

pub async fn save_history(
    settings: Settings,
    id: String,
    out: std::path::PathBuf,
) -> anyhow::Result<ExitCode> {
    let client = client(&settings).await?;
    let json = client
        .get_workflow_handle::<UntypedWorkflow>(id.clone())
        .fetch_history(Default::default())
        .to_json()
        .await
        .with_context(|| format!("fetching the history of {id}"))?;
    std::fs::write(&out, json).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("saved the history of {id} to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

pub fn status_name(status: WorkflowExecutionStatus) -> &'static str {
    match status {
        WorkflowExecutionStatus::Running => "running",
        WorkflowExecutionStatus::Completed => "completed",
        WorkflowExecutionStatus::Failed => "failed",
        WorkflowExecutionStatus::Canceled => "canceled",
        WorkflowExecutionStatus::Terminated => "terminated",
        WorkflowExecutionStatus::ContinuedAsNew => "continued_as_new",
        WorkflowExecutionStatus::TimedOut => "timed_out",
        _ => "unknown",
    }
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// `edgeflow health`: a probe that needs no shell or curl in the image.
pub async fn health(url: &str, timeout_secs: u64) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_secs))
        .build()?;
    let resp = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("unhealthy: {url}"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("unhealthy: {url} answered {status}: {}", body.trim());
    }
    println!("{}", body.trim());
    Ok(ExitCode::SUCCESS)
}
