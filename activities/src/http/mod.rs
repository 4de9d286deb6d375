//! `http.call`: call a named microservice.
//!
//! There is no way to call an arbitrary URL: the input names a service from settings, and the
//! path template is rendered below that service's `base_url` (see `path`); redirects are only
//! followed when they stay below it. Every request carries `Idempotency-Key` (workflow id +
//! step), so a service can recognise Temporal's retries. Answers are mapped by [`Failure`]:
//! 2xx is output; 429/503 retry after `Retry-After`; other 5xx, timeouts and resets retry;
//! other 4xx fail for good with the status and a body excerpt.
//!
//! Per-service limits (`max_concurrent`, `rate_per_sec`) hold across every activity running in
//! the process, because each service's state is shared by all of them.
//!
//! [`Failure`]: crate::Failure

mod model;
pub use model::{HttpCallInput, HttpCallOutput, HttpMethod};

#[cfg(feature = "runtime")]
mod auth;
#[cfg(feature = "runtime")]
mod path;
#[cfg(feature = "runtime")]
mod service;
#[cfg(feature = "runtime")]
mod settings;
#[cfg(feature = "runtime")]
pub use settings::{AuthSettings, HttpSettings, ServiceSettings};

#[cfg(feature = "runtime")]
pub use runtime::{HttpActivities, HttpBuildError};

#[cfg(feature = "runtime")]
mod runtime {
    use std::collections::HashMap;
    use std::sync::Arc;

    use temporalio_macros::activities;
    use temporalio_sdk::activities::{ActivityContext, ActivityError};
    use tracing::instrument;

    use super::service::Service;
    use super::{HttpCallInput, HttpCallOutput, HttpSettings};
    use crate::{CallContext, Failure, Untrusted, names};

    /// The `http` family: one client per configured service. Clones share the clients and
    /// limits, so limits hold however many task queues the family is registered on.
    #[derive(Clone)]
    pub struct HttpActivities {
        services: Arc<HashMap<String, Arc<Service>>>,
    }

    /// A service could not be set up.
    #[derive(Debug, thiserror::Error)]
    #[error("services.{service}: {message}")]
    pub struct HttpBuildError {
        /// The service name.
        pub service: String,
        /// What went wrong.
        pub message: String,
    }

    impl HttpActivities {
        /// Build a client per service. Run [`HttpSettings::validate`] first for a full report;
        /// this fails on the first service it cannot build.
        pub fn new(settings: &HttpSettings) -> Result<Self, HttpBuildError> {
            let mut services = HashMap::new();
            for (name, s) in &settings.services {
                let service = Service::new(name, s).map_err(|message| HttpBuildError {
                    service: name.clone(),
                    message,
                })?;
                services.insert(name.clone(), Arc::new(service));
            }
            Ok(Self {
                services: Arc::new(services),
            })
        }

        /// Names of the configured services.
        pub fn services(&self) -> impl Iterator<Item = &str> {
            self.services.keys().map(String::as_str)
        }

        /// `http.call` without the SDK wrapper: what the activity does, given its caller.
        #[instrument(name = "http.call", skip_all, fields(otel.kind = "client", service = %input.service, method = input.method.as_str(), step = %input.step))]
        pub async fn call_service(
            &self,
            ctx: &CallContext,
            input: HttpCallInput,
        ) -> Result<HttpCallOutput, Failure> {
            ctx.guard(async {
                let service =
                    self.services
                        .get(&input.service)
                        .ok_or_else(|| Failure::UnknownName {
                            kind: "service",
                            name: input.service.clone(),
                        })?;
                let key = ctx.key(&input.step)?;
                service.call(&key, &input).await
            })
            .await
        }
    }

    #[activities]
    impl HttpActivities {
        /// Registered as `http.call`.
        #[activity(name = names::HTTP_CALL)]
        pub async fn call(
            self: Arc<Self>,
            ctx: ActivityContext,
            input: Untrusted<HttpCallInput>,
        ) -> Result<HttpCallOutput, ActivityError> {
            let input = input
                .0
                .map_err(|e| crate::Failure::InvalidInput(e).into_activity_error())?;
            let call = CallContext::from_activity(&ctx);
            self.call_service(&call, input)
                .await
                .map_err(Failure::into_activity_error)
        }
    }
}
