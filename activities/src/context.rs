//! What an activity knows about its caller, and the loop that keeps long calls heartbeating.
//!
//! Inside a worker a [`CallContext`] wraps the SDK's `ActivityContext`; in tests (and tools) a
//! detached context is built by hand, with its own cancellation token and heartbeat counter.
//! The families take a `CallContext`, so their behaviour is tested without a Temporal server.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use temporalio_sdk::activities::ActivityContext;
use tokio_util::sync::CancellationToken;

use crate::failure::Failure;
use crate::idempotency::IdempotencyKey;

/// The W3C `traceparent` of the span the caller runs in, for the requests an activity sends, so
/// the services it calls continue the workflow's trace; `None` outside a trace. Only the trace
/// context goes out: the baggage (the edge's request id and caller) stays inside edgeflow.
pub fn traceparent() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let context = opentelemetry::Context::current();
    let span = context.span();
    let ids = span.span_context();
    ids.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            ids.trace_id(),
            ids.span_id(),
            ids.trace_flags().to_u8()
        )
    })
}

/// Heartbeat this often when Temporal did not set a heartbeat timeout. Heartbeats are also how
/// a cancellation reaches a running activity, so they are sent even then; the SDK throttles them.
const DEFAULT_HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// The caller of one activity attempt.
#[derive(Clone)]
pub struct CallContext {
    /// Workflow id (for an activity started outside a workflow: its activity id).
    pub workflow_id: String,
    /// Workflow run id (empty outside a workflow).
    pub run_id: String,
    /// Workflow type name (empty outside a workflow).
    pub workflow_type: String,
    /// Registered activity type, e.g. `http.call`.
    pub activity_type: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// When the workflow first scheduled this activity: the same on every retry.
    pub scheduled_at: SystemTime,
    heartbeat_every: Duration,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    // Boxed: the SDK's context is large and detached contexts are common in tests.
    Temporal(Box<ActivityContext>),
    Detached {
        cancel: CancellationToken,
        heartbeats: Arc<AtomicU64>,
    },
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("workflow_id", &self.workflow_id)
            .field("run_id", &self.run_id)
            .field("activity_type", &self.activity_type)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl CallContext {
    /// The context of a running activity attempt.
    pub fn from_activity(ctx: &ActivityContext) -> Self {
        let info = ctx.info();
        let heartbeat_every = info
            .heartbeat_timeout
            .filter(|t| !t.is_zero())
            .map(|t| (t / 3).max(Duration::from_millis(100)))
            .unwrap_or(DEFAULT_HEARTBEAT_EVERY);
        Self {
            workflow_id: info
                .workflow_id
                .clone()
                .unwrap_or_else(|| format!("activity:{}", info.activity_id)),
            run_id: info.workflow_run_id.clone().unwrap_or_default(),
            workflow_type: info.workflow_type.clone().unwrap_or_default(),
            activity_type: info.activity_type.clone(),
            attempt: info.attempt,
            scheduled_at: info.scheduled_time.unwrap_or_else(SystemTime::now),
            heartbeat_every,
            backend: Backend::Temporal(Box::new(ctx.clone())),
        }
    }

    /// A context not attached to Temporal: cancel it with [`CallContext::cancel`], count its
    /// heartbeats with [`CallContext::heartbeats`].
    pub fn detached(workflow_id: impl Into<String>, run_id: impl Into<String>) -> Self {
        Self {
            workflow_id: workflow_id.into(),
            run_id: run_id.into(),
            workflow_type: String::new(),
            activity_type: String::new(),
            attempt: 1,
            scheduled_at: SystemTime::now(),
            heartbeat_every: DEFAULT_HEARTBEAT_EVERY,
            backend: Backend::Detached {
                cancel: CancellationToken::new(),
                heartbeats: Arc::new(AtomicU64::new(0)),
            },
        }
    }

    /// The same caller on attempt `attempt`.
    /// The workflow type the context reports (detached contexts have none).
    pub fn with_workflow_type(mut self, workflow_type: impl Into<String>) -> Self {
        self.workflow_type = workflow_type.into();
        self
    }

    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Heartbeat every `every` during long calls.
    pub fn with_heartbeat_every(mut self, every: Duration) -> Self {
        self.heartbeat_every = every;
        self
    }

    /// Cancel a detached context (as Temporal would cancel the activity). No-op when attached.
    pub fn cancel(&self) {
        if let Backend::Detached { cancel, .. } = &self.backend {
            cancel.cancel();
        }
    }

    /// Heartbeats sent by a detached context so far (0 when attached).
    pub fn heartbeats(&self) -> u64 {
        match &self.backend {
            Backend::Detached { heartbeats, .. } => heartbeats.load(Ordering::Relaxed),
            Backend::Temporal(_) => 0,
        }
    }

    /// The idempotency key for `step` in this workflow.
    pub fn key(&self, step: &str) -> Result<IdempotencyKey, Failure> {
        IdempotencyKey::new(self.workflow_id.clone(), step)
    }

    async fn cancelled(&self) {
        match &self.backend {
            Backend::Temporal(ctx) => ctx.cancelled().await,
            Backend::Detached { cancel, .. } => cancel.cancelled().await,
        }
    }

    async fn heartbeat(&self) {
        match &self.backend {
            Backend::Temporal(ctx) => {
                // Only fails to serialise `()`, which cannot happen.
                let _ = ctx.record_heartbeat(()).await;
            }
            Backend::Detached { heartbeats, .. } => {
                heartbeats.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Run `work`, heartbeating while it runs, and stop it (dropping it, which closes its
    /// connections and rolls back its transaction) as soon as the activity is cancelled.
    pub async fn guard<T>(
        &self,
        work: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let heartbeats = async {
            let mut tick = tokio::time::interval(self.heartbeat_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is immediate
            loop {
                tick.tick().await;
                self.heartbeat().await;
            }
        };
        tokio::select! {
            biased;
            () = self.cancelled() => Err(Failure::Cancelled),
            result = work => result,
            _ = heartbeats => unreachable!("the heartbeat loop never ends"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn traceparent_names_the_current_span() {
        use opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
        };
        assert_eq!(traceparent(), None);
        let remote = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let _guard = opentelemetry::Context::new()
            .with_remote_span_context(remote)
            .attach();
        assert_eq!(
            traceparent().as_deref(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
    }

    #[tokio::test]
    async fn guard_heartbeats_while_work_runs() {
        let ctx =
            CallContext::detached("wf", "run").with_heartbeat_every(Duration::from_millis(20));
        let out = ctx
            .guard(async {
                tokio::time::sleep(Duration::from_millis(130)).await;
                Ok::<_, Failure>(7)
            })
            .await;
        assert_eq!(out, Ok(7));
        assert!(ctx.heartbeats() >= 4, "heartbeats: {}", ctx.heartbeats());
    }

    #[tokio::test]
    async fn guard_stops_promptly_on_cancellation() {
        let ctx = CallContext::detached("wf", "run");
        let canceller = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            canceller.cancel();
        });
        let started = Instant::now();
        let out = ctx
            .guard(async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok::<_, Failure>(())
            })
            .await;
        assert_eq!(out, Err(Failure::Cancelled));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
