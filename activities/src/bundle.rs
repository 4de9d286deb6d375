//! All four families, built from settings in one call and registered on a worker in another.

use temporalio_sdk::WorkerOptions;

use crate::SettingError;
use crate::db::{Database, DatabaseError, DbActivities, DbBuildError, DbSettings};
use crate::email::{EmailActivities, EmailBuildError, EmailSettings};
use crate::http::{HttpActivities, HttpBuildError, HttpSettings};
use crate::webhook::{WebhookActivities, WebhookBuildError, WebhookSettings};

/// The settings of every family, borrowed from the binary's settings tree
/// (`[services.*]`, `[database]`, `[email]`, `[webhooks.*]`).
#[derive(Debug, Clone, Copy)]
pub struct ActivitiesSettings<'a> {
    /// `[services.NAME]`
    pub services: &'a HttpSettings,
    /// `[database]`
    pub database: &'a DbSettings,
    /// `[email]`
    pub email: &'a EmailSettings,
    /// `[webhooks.NAME]`
    pub webhooks: &'a WebhookSettings,
}

impl ActivitiesSettings<'_> {
    /// Every problem in every family's settings, at their full key paths.
    pub fn validate(&self) -> Vec<SettingError> {
        let mut out = self.services.validate();
        out.extend(self.database.validate());
        out.extend(self.email.validate());
        out.extend(self.webhooks.validate());
        out
    }
}

/// A family could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A service's client.
    #[error(transparent)]
    Http(#[from] HttpBuildError),
    /// Connecting to or migrating the database.
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// Loading or checking the named statements.
    #[error(transparent)]
    Db(#[from] DbBuildError),
    /// Templates or transport.
    #[error(transparent)]
    Email(#[from] EmailBuildError),
    /// An endpoint's secrets or client.
    #[error(transparent)]
    Webhook(#[from] WebhookBuildError),
}

/// The four families, ready to register. Cheap to clone: clones share clients, pools,
/// limits and templates.
#[derive(Clone)]
pub struct Activities {
    /// `http.call`
    pub http: HttpActivities,
    /// `db.execute`
    pub db: DbActivities,
    /// `email.send`
    pub email: EmailActivities,
    /// `webhook.notify`
    pub webhook: WebhookActivities,
}

impl Activities {
    /// Build every family: connect to the database and run its migrations, load and check the
    /// named statements, load the templates, set up the email transport, HTTP clients and
    /// webhook keys. Call [`ActivitiesSettings::validate`] first for a full report of bad
    /// settings; this stops at the first family that cannot be built.
    pub async fn build(settings: ActivitiesSettings<'_>) -> Result<Self, BuildError> {
        let http = HttpActivities::new(settings.services)?;
        let webhook = WebhookActivities::new(settings.webhooks)?;
        let database = Database::connect(settings.database).await?;
        let email = EmailActivities::new(settings.email, database.clone())?;
        let db = DbActivities::new(database, settings.database).await?;
        Ok(Self {
            http,
            db,
            email,
            webhook,
        })
    }

    /// The database pool (to close it after the worker has drained).
    pub fn database(&self) -> Database {
        self.db.database().clone()
    }

    /// Register all four activities (`http.call`, `db.execute`, `email.send`,
    /// `webhook.notify`) on a worker's options. Call it once per task queue; every
    /// registration shares the same clients, pools and per-service limits.
    pub fn register(&self, options: &mut WorkerOptions) {
        options
            .register_activities(self.http.clone())
            .register_activities(self.db.clone())
            .register_activities(self.email.clone())
            .register_activities(self.webhook.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use temporalio_common::ActivityDefinition;

    use super::*;
    use crate::{Activity, Untrusted};

    /// The implementations are registered under the contract's names and take exactly the
    /// contract's input (wrapped in `Untrusted`) and output: checked by the compiler.
    fn same_contract<D, I>(definition: D, implementation: I)
    where
        D: ActivityDefinition,
        I: ActivityDefinition<Input = Untrusted<D::Input>, Output = D::Output>,
    {
        assert_eq!(definition.name(), implementation.name());
    }

    #[test]
    fn implementations_match_the_contract() {
        same_contract(Activity::http_call, HttpActivities::call);
        same_contract(Activity::db_execute, DbActivities::execute);
        same_contract(Activity::email_send, EmailActivities::send);
        same_contract(Activity::webhook_notify, WebhookActivities::notify);
    }

    #[tokio::test]
    async fn builds_from_default_settings_and_registers_on_every_queue() {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let database = DbSettings {
            url: format!("sqlite://{}/var/edgeflow.db?mode=rwc", dir.path().display()).into(),
            queries_dir: root.join("config/queries"),
            ..Default::default()
        };
        let mut email = EmailSettings {
            templates_dir: root.join("config/templates"),
            ..Default::default()
        };
        email.outbox.dir = dir.path().join("outbox");
        let services = HttpSettings::default();
        let webhooks = WebhookSettings::default();
        let settings = ActivitiesSettings {
            services: &services,
            database: &database,
            email: &email,
            webhooks: &webhooks,
        };
        assert_eq!(settings.validate(), vec![]);
        let activities = Activities::build(settings).await.unwrap();
        for queue in ["edgeflow", "edgeflow-io"] {
            let mut options = WorkerOptions::new(queue).build();
            activities.register(&mut options);
            let registered = format!("{:?}", options.activities());
            for name in crate::names::ALL {
                assert!(
                    registered.contains(name),
                    "{name} missing from {registered}"
                );
            }
        }
        activities.database().close().await;
    }
}
