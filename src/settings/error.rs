//! A problem with a setting, and every problem a load found.
//!
//! Every section's checks report [`SettingError`]s; they import them from here, not through
//! [`crate::settings`], so a section's module never depends on the tree that composes it.
//! Nothing here depends on another module of the binary.

use std::fmt;
use std::path::Path;

pub use edgeflow_activities::settings::SettingError;

/// A problem at `path`.
pub fn problem(path: impl Into<String>, message: impl Into<String>) -> SettingError {
    SettingError::new(path, message)
}

/// Every problem found while loading settings.
#[derive(Debug, thiserror::Error)]
pub struct SettingsErrors(pub Vec<SettingError>);

impl fmt::Display for SettingsErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in settings:", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {}: {}", e.path, e.message)?;
        }
        Ok(())
    }
}

/// `rest` under `section`, as a dotted key path.
pub fn join_path(section: &str, rest: &str) -> String {
    if rest.is_empty() {
        section.to_string()
    } else {
        format!("{section}.{rest}")
    }
}

/// Reports `file` at `path` unless it can be read now.
pub fn check_readable(out: &mut Vec<SettingError>, path: &str, file: Option<&Path>) {
    if let Some(file) = file
        && let Err(e) = std::fs::read(file)
    {
        out.push(problem(
            path,
            format!("cannot read `{}`: {e}", file.display()),
        ));
    }
}
