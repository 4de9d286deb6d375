//! The operations the gateway offers, in Temporal's HTTP API shape, and the policy around them.
//!
//! Every request is authenticated first (401), then matched against the few operations the edge
//! uses; anything else is refused before Temporal hears of it (403 for an operation the gateway
//! does not offer, 404 for a namespace, workflow type, signal, update or query the edge's
//! manifest does not name). Signals, updates, queries, cancels, describes and history reads are
//! allowed only on runs whose type is in the manifest, which the gateway learns by describing the
//! run first. What reaches Temporal carries the caller: `identity` is `edge:<sub>`, and starts get
//! the subject and the edge's request id in their memo and search attributes, whatever the body
//! said.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use edgeflow_devserver::{EDGE_REQUEST_ID, EDGE_SUBJECT};
use temporalio_client::tonic;
use temporalio_common::protos::temporal::api::common::v1::{
    Memo, SearchAttributes, WorkflowExecution,
};
use temporalio_common::protos::temporal::api::enums::v1::HistoryEventFilterType;
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    DescribeWorkflowExecutionRequest, GetWorkflowExecutionHistoryRequest, QueryWorkflowRequest,
    RequestCancelWorkflowExecutionRequest, SignalWorkflowExecutionRequest,
    StartWorkflowExecutionRequest, UpdateWorkflowExecutionRequest,
};

use super::metrics::GatewayMetrics;
use super::protojson::{self, JsonError};
use super::token::{Binding, Caller, TokenError, Verifier};
use crate::payload::json_payload;

/// What the edge may do, from the workflow catalog (`edge: true` workflows only).
#[derive(Debug, Default)]
pub struct Contract {
    workflows: BTreeMap<String, EdgeWorkflow>,
}

#[derive(Debug, Default)]
struct EdgeWorkflow {
    task_queue: String,
    signals: BTreeSet<String>,
    updates: BTreeSet<String>,
    queries: BTreeSet<String>,
}

#[derive(Clone, Copy)]
enum Message {
    Signal,
    Update,
    Query,
}

impl Message {
    fn noun(self) -> &'static str {
        match self {
            Message::Signal => "signal",
            Message::Update => "update",
            Message::Query => "query",
        }
    }
}

impl Contract {
    /// The edge's workflows, all on `task_queue` (as `edgeflow schema export` writes them).
    pub fn from_catalog(task_queue: &str) -> Self {
        let workflows = edgeflow_workflows::catalog::workflows()
            .into_iter()
            .filter(|w| w.edge)
            .map(|w| {
                let edge = EdgeWorkflow {
                    task_queue: task_queue.to_string(),
                    signals: w.signals.iter().map(|m| m.name.clone()).collect(),
                    updates: w.updates.iter().map(|m| m.name.clone()).collect(),
                    queries: w.queries.iter().map(|m| m.name.clone()).collect(),
                };
                (w.name.to_string(), edge)
            })
            .collect();
        Self { workflows }
    }

    fn names(w: &EdgeWorkflow, kind: Message) -> &BTreeSet<String> {
        match kind {
            Message::Signal => &w.signals,
            Message::Update => &w.updates,
            Message::Query => &w.queries,
        }
    }

    /// Whether any edge workflow declares `name`: if none does, no describe is needed to refuse.
    fn declared_anywhere(&self, kind: Message, name: &str) -> bool {
        self.workflows
            .values()
            .any(|w| Self::names(w, kind).contains(name))
    }

    fn declares(&self, workflow_type: &str, kind: Message, name: &str) -> bool {
        self.workflows
            .get(workflow_type)
            .is_some_and(|w| Self::names(w, kind).contains(name))
    }
}

/// Everything a request needs; shared by all of them.
pub struct Gateway {
    pub namespace: String,
    pub contract: Contract,
    pub verifier: Verifier,
    pub connection: temporalio_client::Connection,
    pub max_body_bytes: usize,
    pub call_timeout: Duration,
    pub metrics: Arc<GatewayMetrics>,
}

/// Why a request got no answer from Temporal.
enum Refusal {
    /// The gateway's own refusals, as `application/problem+json`.
    Problem {
        status: StatusCode,
        kind: &'static str,
        detail: String,
    },
    /// A body Temporal's HTTP API would refuse the same way (400, its error shape).
    BadRequest(String),
    /// Temporal's answer, in the HTTP API's error shape and status.
    Temporal(tonic::Status),
}

impl Refusal {
    fn problem(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Refusal::Problem {
            status,
            kind,
            detail: detail.into(),
        }
    }

    fn not_offered(detail: impl Into<String>) -> Self {
        Self::problem(StatusCode::FORBIDDEN, "not-offered", detail)
    }

    fn not_found(detail: impl Into<String>) -> Self {
        Self::problem(StatusCode::NOT_FOUND, "not-found", detail)
    }
}

impl From<tonic::Status> for Refusal {
    fn from(s: tonic::Status) -> Self {
        Refusal::Temporal(s)
    }
}

impl From<JsonError> for Refusal {
    fn from(e: JsonError) -> Self {
        Refusal::BadRequest(e.to_string())
    }
}

impl From<TokenError> for Refusal {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::ReplayCacheFull => {
                Self::problem(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string())
            }
            other => Self::problem(StatusCode::UNAUTHORIZED, "unauthorized", other.to_string()),
        }
    }
}

impl Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Problem {
                status,
                kind,
                detail,
            } => {
                let body = serde_json::json!({
                    "type": format!("https://edgeflow.dev/problems/gateway/{kind}"),
                    "title": status.canonical_reason().unwrap_or("Refused"),
                    "status": status.as_u16(),
                    "detail": detail,
                });
                let mut response = (
                    status,
                    [(header::CONTENT_TYPE, "application/problem+json")],
                    body.to_string(),
                )
                    .into_response();
                if status == StatusCode::UNAUTHORIZED {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                response
            }
            Refusal::BadRequest(message) => json_response(
                StatusCode::BAD_REQUEST,
                protojson::error_json(tonic::Code::InvalidArgument as i32, &message),
            ),
            Refusal::Temporal(status) => json_response(
                protojson::http_status(status.code()),
                protojson::status_json(&status),
            ),
        }
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The one handler: authenticate, route, call Temporal, answer; one access-log line per request.
pub async fn handle(State(gw): State<Arc<Gateway>>, request: Request) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut operation = "refused";
    let mut caller = None;
    let mut workflow_id = String::new();
    let result = async {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let path_and_query = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| path.clone());
        let query = request.uri().query().unwrap_or_default().to_string();
        // Read (bounded) before the token is checked: the token is bound to the body's hash.
        let body = axum::body::to_bytes(request.into_body(), gw.max_body_bytes)
            .await
            .map_err(|_| {
                Refusal::problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-large",
                    format!("the body exceeds {} bytes", gw.max_body_bytes),
                )
            })?;
        let binding = Binding {
            method: method.as_str(),
            path_and_query: &path_and_query,
            body: &body,
        };
        let who = gw
            .verifier
            .verify(authorization.as_deref(), &binding, now)
            .await?;
        caller = Some(who.clone());
        let route = route(&gw, &method, &path)?;
        operation = route.operation();
        workflow_id = route.workflow_id().to_string();
        gw.run(route, &who, &query, &body).await
    }
    .await;
    let response = match result {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(refusal) => refusal.into_response(),
    };
    let took = started.elapsed();
    gw.metrics
        .observe(operation, response.status().as_u16(), took);
    let (subject, request_id) = caller
        .as_ref()
        .map(|c| (c.subject.as_str(), c.request_id.as_str()))
        .unwrap_or_default();
    tracing::info!(
        %method,
        %path,
        operation,
        status = response.status().as_u16(),
        subject,
        request_id,
        workflow_id,
        took_us = took.as_micros() as u64,
        "gateway request"
    );
    response
}

/// A request the gateway offers, with its path's parts decoded.
enum Route {
    Start { id: String },
    Describe { id: String },
    History { id: String },
    Signal { id: String, name: String },
    Update { id: String, name: String },
    Query { id: String, name: String },
    Cancel { id: String },
}

impl Route {
    fn operation(&self) -> &'static str {
        match self {
            Route::Start { .. } => "start",
            Route::Describe { .. } => "describe",
            Route::History { .. } => "history",
            Route::Signal { .. } => "signal",
            Route::Update { .. } => "update",
            Route::Query { .. } => "query",
            Route::Cancel { .. } => "cancel",
        }
    }

    fn workflow_id(&self) -> &str {
        match self {
            Route::Start { id }
            | Route::Describe { id }
            | Route::History { id }
            | Route::Signal { id, .. }
            | Route::Update { id, .. }
            | Route::Query { id, .. }
            | Route::Cancel { id } => id,
        }
    }
}

/// Matches `/api/v1/namespaces/{ns}/workflows/{id}[/…]`; everything else is refused here.
fn route(gw: &Gateway, method: &Method, path: &str) -> Result<Route, Refusal> {
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
        })
        .collect::<Result<_, _>>()
        .map_err(|_| Refusal::not_found("the path is not UTF-8"))?;
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (ns, rest) = match parts.as_slice() {
        ["api", "v1", "namespaces", ns, rest @ ..] => (*ns, rest),
        _ => {
            return Err(Refusal::not_found(
                "the gateway serves only /api/v1/namespaces/…",
            ));
        }
    };
    if ns != gw.namespace {
        return Err(Refusal::not_found(format!(
            "namespace `{ns}` is not served by this gateway"
        )));
    }
    let (id, op) = match rest {
        ["workflows", id, op @ ..] if !id.is_empty() => (id.to_string(), op),
        _ => {
            return Err(Refusal::not_offered(
                "the gateway offers only start, signal, update, describe, history (close \
                 event), query and cancel of single workflows",
            ));
        }
    };
    let name = |n: &str| n.to_string();
    let route = match (method, op) {
        (&Method::POST, []) => Route::Start { id },
        (&Method::GET, []) => Route::Describe { id },
        (&Method::GET, ["history"]) => Route::History { id },
        (&Method::POST, ["signal", n]) => Route::Signal { id, name: name(n) },
        (&Method::POST, ["update", n]) => Route::Update { id, name: name(n) },
        (&Method::POST, ["query", n]) => Route::Query { id, name: name(n) },
        (&Method::POST, ["cancel"]) => Route::Cancel { id },
        _ => {
            return Err(Refusal::not_offered(format!(
                "{method} {} is not offered by the gateway",
                op.first().map_or("(workflow)", |o| *o)
            )));
        }
    };
    // Names no edge workflow declares are refused before any call to Temporal.
    let declared = |kind: Message, name: &str| {
        if gw.contract.declared_anywhere(kind, name) {
            Ok(())
        } else {
            Err(Refusal::not_found(format!(
                "no workflow the edge may use declares the {} `{name}`",
                kind.noun()
            )))
        }
    };
    match &route {
        Route::Signal { name, .. } => declared(Message::Signal, name)?,
        Route::Update { name, .. } => declared(Message::Update, name)?,
        Route::Query { name, .. } => declared(Message::Query, name)?,
        _ => {}
    }
    Ok(route)
}

impl Gateway {
    fn grpc<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.call_timeout);
        // Each call is answered once, as Temporal's HTTP API does; the edge decides on retries.
        request
            .extensions_mut()
            .insert(temporalio_client::request_extensions::RetryConfigForCall(
                temporalio_client::RetryOptions::no_retries(),
            ));
        request
    }

    async fn run(
        &self,
        route: Route,
        caller: &Caller,
        query: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, Refusal> {
        match route {
            Route::Start { id } => self.start(id, caller, body).await,
            Route::Describe { id } => {
                let run_id = run_id_param(query)?;
                let (described, _) = self.describe_known(&id, &run_id).await?;
                Ok(protojson::to_json(&described))
            }
            Route::History { id } => self.history(id, query).await,
            Route::Signal { id, name } => {
                let mut req: SignalWorkflowExecutionRequest = protojson::from_json(body)?;
                let run_id = run_of(&req.workflow_execution);
                self.check_declared(&id, &run_id, Message::Signal, &name)
                    .await?;
                req.namespace = self.namespace.clone();
                req.workflow_execution = Some(execution(&id, run_id));
                req.signal_name = name;
                req.identity = caller.identity();
                let res = self
                    .connection
                    .workflow_service()
                    .signal_workflow_execution(self.grpc(req))
                    .await?;
                Ok(protojson::to_json(res.get_ref()))
            }
            Route::Update { id, name } => {
                let mut req: UpdateWorkflowExecutionRequest = protojson::from_json(body)?;
                let run_id = run_of(&req.workflow_execution);
                self.check_declared(&id, &run_id, Message::Update, &name)
                    .await?;
                req.namespace = self.namespace.clone();
                req.workflow_execution = Some(execution(&id, run_id));
                let request = req.request.get_or_insert_default();
                request.meta.get_or_insert_default().identity = caller.identity();
                request.input.get_or_insert_default().name = name;
                let res = self
                    .connection
                    .workflow_service()
                    .update_workflow_execution(self.grpc(req))
                    .await?;
                Ok(protojson::to_json(res.get_ref()))
            }
            Route::Query { id, name } => {
                let mut req: QueryWorkflowRequest = protojson::from_json(body)?;
                let run_id = run_of(&req.execution);
                self.check_declared(&id, &run_id, Message::Query, &name)
                    .await?;
                req.namespace = self.namespace.clone();
                req.execution = Some(execution(&id, run_id));
                req.query.get_or_insert_default().query_type = name;
                let res = self
                    .connection
                    .workflow_service()
                    .query_workflow(self.grpc(req))
                    .await?;
                Ok(protojson::to_json(res.get_ref()))
            }
            Route::Cancel { id } => {
                let mut req: RequestCancelWorkflowExecutionRequest = protojson::from_json(body)?;
                let run_id = run_of(&req.workflow_execution);
                self.describe_known(&id, &run_id).await?;
                req.namespace = self.namespace.clone();
                req.workflow_execution = Some(execution(&id, run_id));
                req.identity = caller.identity();
                let res = self
                    .connection
                    .workflow_service()
                    .request_cancel_workflow_execution(self.grpc(req))
                    .await?;
                Ok(protojson::to_json(res.get_ref()))
            }
        }
    }

    async fn start(&self, id: String, caller: &Caller, body: &[u8]) -> Result<Vec<u8>, Refusal> {
        let mut req: StartWorkflowExecutionRequest = protojson::from_json(body)?;
        let workflow_type = req
            .workflow_type
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let Some(workflow) = self.contract.workflows.get(&workflow_type) else {
            return Err(Refusal::not_found(format!(
                "workflow type `{workflow_type}` is not one the edge may start"
            )));
        };
        let queue = req.task_queue.get_or_insert_default();
        if queue.name.is_empty() {
            queue.name = workflow.task_queue.clone();
        } else if queue.name != workflow.task_queue {
            return Err(Refusal::not_offered(format!(
                "`{workflow_type}` runs on task queue `{}`, not `{}`",
                workflow.task_queue, queue.name
            )));
        }
        if !req.workflow_id.is_empty() && req.workflow_id != id {
            return Err(Refusal::BadRequest(format!(
                "workflowId `{}` in the body differs from `{id}` in the path",
                req.workflow_id
            )));
        }
        // Options that would run the workflow differently from how the edge's callers expect.
        for (set, field) in [
            (!req.cron_schedule.is_empty(), "cronSchedule"),
            (req.request_eager_execution, "requestEagerExecution"),
            (req.continued_failure.is_some(), "continuedFailure"),
            (req.last_completion_result.is_some(), "lastCompletionResult"),
            (req.versioning_override.is_some(), "versioningOverride"),
            (
                req.eager_worker_deployment_options.is_some(),
                "eagerWorkerDeploymentOptions",
            ),
            (req.time_skipping_config.is_some(), "timeSkippingConfig"),
        ] {
            if set {
                return Err(Refusal::not_offered(format!(
                    "`{field}` is not offered through the gateway"
                )));
            }
        }
        req.namespace = self.namespace.clone();
        req.workflow_id = id;
        req.identity = caller.identity();
        let memo = req.memo.get_or_insert_with(Memo::default);
        memo.fields
            .insert("edge_subject".into(), json_payload(&caller.subject));
        memo.fields
            .insert("edge_request_id".into(), json_payload(&caller.request_id));
        let attributes = req
            .search_attributes
            .get_or_insert_with(SearchAttributes::default);
        attributes
            .indexed_fields
            .insert(EDGE_SUBJECT.name.into(), json_payload(&caller.subject));
        attributes.indexed_fields.insert(
            EDGE_REQUEST_ID.name.into(),
            json_payload(&caller.request_id),
        );
        let res = self
            .connection
            .workflow_service()
            .start_workflow_execution(self.grpc(req))
            .await?;
        Ok(protojson::to_json(res.get_ref()))
    }

    /// The close-event long poll, and nothing else of a history.
    async fn history(&self, id: String, query: &str) -> Result<Vec<u8>, Refusal> {
        let mut req = GetWorkflowExecutionHistoryRequest {
            namespace: self.namespace.clone(),
            ..Default::default()
        };
        let mut run_id = String::new();
        let mut filter = None;
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "historyEventFilterType" | "history_event_filter_type" => {
                    filter = HistoryEventFilterType::from_str_name(&value).or_else(|| {
                        value
                            .parse::<i32>()
                            .ok()
                            .and_then(|n| HistoryEventFilterType::try_from(n).ok())
                    });
                }
                "waitNewEvent" | "wait_new_event" => {
                    req.wait_new_event = parse_bool(&key, &value)?;
                }
                "nextPageToken" | "next_page_token" => {
                    req.next_page_token = decode_bytes(&value)
                        .ok_or_else(|| Refusal::BadRequest(format!("{key}: not base64")))?;
                }
                "execution.runId" | "execution.run_id" => run_id = value.into_owned(),
                other => {
                    return Err(Refusal::BadRequest(format!(
                        "query parameter `{other}` is not offered by the gateway"
                    )));
                }
            }
        }
        if filter != Some(HistoryEventFilterType::CloseEvent) {
            return Err(Refusal::not_offered(
                "only the close event of a history is offered: \
                 historyEventFilterType=HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT",
            ));
        }
        req.history_event_filter_type = HistoryEventFilterType::CloseEvent as i32;
        self.describe_known(&id, &run_id).await?;
        req.execution = Some(execution(&id, run_id));
        let mut call = self.grpc(req);
        // The server answers a long poll within ~20 s by itself; never cut it shorter.
        call.set_timeout(self.call_timeout.max(Duration::from_secs(30)));
        let res = self
            .connection
            .workflow_service()
            .get_workflow_execution_history(call)
            .await?;
        Ok(protojson::to_json(res.get_ref()))
    }

    /// Describes the run, refusing it unless its type is one of the edge's workflows. Returns the
    /// description and the type.
    async fn describe_known(
        &self,
        id: &str,
        run_id: &str,
    ) -> Result<
        (
            temporalio_common::protos::temporal::api::workflowservice::v1::DescribeWorkflowExecutionResponse,
            String,
        ),
        Refusal,
    >{
        let req = DescribeWorkflowExecutionRequest {
            namespace: self.namespace.clone(),
            execution: Some(execution(id, run_id.to_string())),
        };
        let res = self
            .connection
            .workflow_service()
            .describe_workflow_execution(self.grpc(req))
            .await?
            .into_inner();
        let workflow_type = res
            .workflow_execution_info
            .as_ref()
            .and_then(|i| i.r#type.as_ref())
            .map(|t| t.name.clone())
            .unwrap_or_default();
        if !self.contract.workflows.contains_key(&workflow_type) {
            // Said as Temporal would say it: to the edge, such a run does not exist.
            return Err(Refusal::not_found(format!(
                "workflow `{id}` is not one the edge may use"
            )));
        }
        Ok((res, workflow_type))
    }

    async fn check_declared(
        &self,
        id: &str,
        run_id: &str,
        kind: Message,
        name: &str,
    ) -> Result<(), Refusal> {
        let (_, workflow_type) = self.describe_known(id, run_id).await?;
        if self.contract.declares(&workflow_type, kind, name) {
            Ok(())
        } else {
            Err(Refusal::not_found(format!(
                "`{workflow_type}` declares no {} `{name}`",
                kind.noun()
            )))
        }
    }
}

fn execution(id: &str, run_id: String) -> WorkflowExecution {
    WorkflowExecution {
        workflow_id: id.to_string(),
        run_id,
    }
}

fn run_of(execution: &Option<WorkflowExecution>) -> String {
    execution
        .as_ref()
        .map(|e| e.run_id.clone())
        .unwrap_or_default()
}

fn run_id_param(query: &str) -> Result<String, Refusal> {
    let mut run_id = String::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "execution.runId" | "execution.run_id" => run_id = value.into_owned(),
            other => {
                return Err(Refusal::BadRequest(format!(
                    "query parameter `{other}` is not offered by the gateway"
                )));
            }
        }
    }
    Ok(run_id)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, Refusal> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        _ => Err(Refusal::BadRequest(format!(
            "{key}: `{value}` is not a boolean"
        ))),
    }
}

/// Page tokens travel as base64 (standard or URL-safe, padded or not), as grpc-gateway accepts.
fn decode_bytes(value: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(value).ok())
}

/// Answers every request, including the ones no route matches (after authenticating them).
pub fn router(gateway: Arc<Gateway>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(gateway)
}
