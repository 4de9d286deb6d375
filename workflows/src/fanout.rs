//! `fanout`: three `http.call`s to one service in parallel, then one `echo` of their answers.
//!
//! The benchmarks' I/O workload (`bench/`, W2 `io-fanout`; the Python and TypeScript peer workers
//! there run the same steps), and the smallest example of parallel activities with `join!`.
//! The calls differ only in their step key (`fetch-1` … `fetch-3`, so each has its own
//! `Idempotency-Key`) and a `part` query parameter (so the service sees three requests).

use std::collections::BTreeMap;
use std::time::Duration;

use edgeflow_activities::Activity;
use edgeflow_activities::Untrusted;
use edgeflow_activities::http::{HttpCallInput, HttpMethod};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::join;
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowResult};

use crate::echo::{EchoActivity, EchoInput};

/// Calls made in parallel.
pub const PARTS: usize = 3;

/// Input of the `fanout` workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FanoutInput {
    /// `[services.NAME]` to call.
    #[schemars(length(min = 1, max = 64))]
    pub service: String,
    /// Path below the service's base URL, fetched with GET.
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
}

impl FanoutInput {
    /// The `http.call` of part `n` (1-based).
    pub fn call(&self, n: usize) -> HttpCallInput {
        HttpCallInput {
            step: format!("fetch-{n}"),
            service: self.service.clone(),
            method: HttpMethod::Get,
            path: self.path.clone(),
            path_params: BTreeMap::new(),
            query: BTreeMap::from([("part".to_string(), n.to_string())]),
            body: None,
            headers: BTreeMap::new(),
        }
    }
}

/// Each call gets 30 s per attempt and the server's default retry policy: the stub answers in
/// milliseconds, and a slow answer should show up as latency, not as a failed run.
fn call_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30)).build()
}

#[workflow]
#[derive(Default)]
pub struct FanoutWorkflow;

#[workflow_methods]
impl FanoutWorkflow {
    /// Returns `{"fetched": [json₁, json₂, json₃]}`: each call's JSON body, in part order, as
    /// echoed back by the final `echo` activity.
    #[run(name = "fanout")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: Untrusted<FanoutInput>,
    ) -> WorkflowResult<serde_json::Value> {
        let input = crate::accept(input)?;
        let (first, second, third) = join!(
            ctx.execute_activity(Activity::http_call, input.call(1), call_options()),
            ctx.execute_activity(Activity::http_call, input.call(2), call_options()),
            ctx.execute_activity(Activity::http_call, input.call(3), call_options()),
        );
        let fetched: Vec<_> = [first?, second?, third?]
            .into_iter()
            .map(|out| out.json.unwrap_or(serde_json::Value::Null))
            .collect();
        let echoed = EchoInput {
            message: json!({ "fetched": fetched }),
            delay_ms: 0,
        };
        Ok(ctx
            .execute_activity(EchoActivity::echo, echoed, call_options())
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_part_has_its_own_step_and_query() {
        let input = FanoutInput {
            service: "stub".into(),
            path: "/items".into(),
        };
        let calls: Vec<_> = (1..=PARTS).map(|n| input.call(n)).collect();
        let steps: Vec<_> = calls.iter().map(|c| c.step.as_str()).collect();
        assert_eq!(steps, ["fetch-1", "fetch-2", "fetch-3"]);
        assert!(
            calls
                .iter()
                .all(|c| c.method == HttpMethod::Get && c.service == "stub" && c.path == "/items")
        );
        assert_eq!(calls[2].query["part"], "3");
    }

    #[test]
    fn unknown_input_keys_are_refused() {
        let bad = serde_json::from_value::<FanoutInput>(
            json!({"service": "s", "path": "/", "paht": "/x"}),
        );
        assert!(bad.is_err());
    }
}
