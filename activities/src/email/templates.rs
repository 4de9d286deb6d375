//! Email templates: `TEMPLATES_DIR/NAME/{subject.txt, body.txt, body.html}` rendered with
//! minijinja.
//!
//! All templates are loaded and compiled at start-up; input can only name one of them (a
//! lower-case identifier, so never a path). Printing a variable the input did not supply is
//! an error (minijinja's semi-strict mode), not an empty string; `{% if x is defined %}` still
//! works for optional parts. `body.html` is auto-escaped; the text parts are not.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde_json::{Map, Value};

use crate::failure::Failure;
use crate::settings::is_identifier;

/// The rendered parts of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line, trimmed.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body, when the template has one.
    pub html: Option<String>,
}

/// Every template in a folder, compiled.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    /// Template name → whether it has an HTML part.
    names: BTreeMap<String, bool>,
}

impl Templates {
    /// Load and compile every template under `dir`, or report every problem.
    pub fn load(dir: &Path) -> Result<Self, Vec<String>> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        let mut names = BTreeMap::new();
        let mut problems = Vec::new();
        let entries = std::fs::read_dir(dir)
            .map_err(|e| vec![format!("cannot read `{}`: {e}", dir.display())])?;
        let mut folders: Vec<_> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .collect();
        folders.sort_by_key(|e| e.file_name());
        for folder in folders {
            let name = folder.file_name().to_string_lossy().into_owned();
            if !is_identifier(&name) {
                problems.push(format!(
                    "{name}/: template names must be lower-case identifiers ([a-z][a-z0-9_]*)"
                ));
                continue;
            }
            let mut has_html = false;
            for (part, required) in [
                ("subject.txt", true),
                ("body.txt", true),
                ("body.html", false),
            ] {
                let path = folder.path().join(part);
                match std::fs::read_to_string(&path) {
                    Ok(source) => {
                        if let Err(e) = env.add_template_owned(format!("{name}/{part}"), source) {
                            problems.push(format!("{name}/{part}: {}", describe(&e)));
                        }
                        has_html |= part == "body.html";
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {}
                    Err(e) => problems.push(format!("{name}/{part}: {e}")),
                }
            }
            names.insert(name, has_html);
        }
        if problems.is_empty() {
            Ok(Self { env, names })
        } else {
            Err(problems)
        }
    }

    /// Names of the loaded templates.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    /// Whether `name` is a loaded template.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// Render template `name` with `vars`.
    pub fn render(&self, name: &str, vars: &Map<String, Value>) -> Result<Rendered, Failure> {
        let has_html = *self.names.get(name).ok_or_else(|| Failure::UnknownName {
            kind: "template",
            name: name.to_owned(),
        })?;
        let part = |part: &str| -> Result<String, Failure> {
            self.env
                .get_template(&format!("{name}/{part}"))
                .and_then(|t| t.render(vars))
                .map_err(|e| Failure::Template {
                    template: name.to_owned(),
                    message: format!("{part}: {}", describe(&e)),
                })
        };
        let subject = part("subject.txt")?.trim().to_owned();
        if subject.contains(['\r', '\n', '\0']) {
            return Err(Failure::HeaderInjection {
                field: "subject".into(),
            });
        }
        if subject.is_empty() {
            return Err(Failure::Template {
                template: name.to_owned(),
                message: "subject.txt rendered empty".into(),
            });
        }
        Ok(Rendered {
            subject,
            text: part("body.txt")?,
            html: if has_html {
                Some(part("body.html")?)
            } else {
                None
            },
        })
    }
}

/// A minijinja error with its line and the reason an undefined value was hit.
fn describe(e: &minijinja::Error) -> String {
    let mut text = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        text.push_str(&format!(" (line {line})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn vars(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn renders_all_parts_and_escapes_only_html() {
        let dir = dir_with(&[
            ("hello/subject.txt", "Hello {{ name }}\n"),
            (
                "hello/body.txt",
                "Hi {{ name }}{% if note is defined %}, {{ note }}{% endif %}.",
            ),
            ("hello/body.html", "<p>Hi {{ name }}</p>"),
        ]);
        let t = Templates::load(dir.path()).unwrap();
        let r = t.render("hello", &vars(json!({"name": "<Ada>"}))).unwrap();
        assert_eq!(r.subject, "Hello <Ada>");
        assert_eq!(r.text, "Hi <Ada>.");
        assert_eq!(r.html.as_deref(), Some("<p>Hi &lt;Ada&gt;</p>"));
    }

    #[test]
    fn a_missing_variable_is_an_error_not_an_empty_string() {
        let dir = dir_with(&[("t/subject.txt", "S"), ("t/body.txt", "Total: {{ total }}")]);
        let t = Templates::load(dir.path()).unwrap();
        let err = t.render("t", &Map::new()).unwrap_err();
        assert!(matches!(err, Failure::Template { .. }), "{err:?}");
        assert!(err.to_string().contains("undefined"), "{err}");
    }

    #[test]
    fn subjects_with_line_breaks_are_refused() {
        let dir = dir_with(&[("t/subject.txt", "Order {{ id }}"), ("t/body.txt", "b")]);
        let t = Templates::load(dir.path()).unwrap();
        let err = t
            .render("t", &vars(json!({"id": "1\r\nBcc: eve@evil.example"})))
            .unwrap_err();
        assert_eq!(
            err,
            Failure::HeaderInjection {
                field: "subject".into()
            }
        );
    }

    #[test]
    fn names_cannot_be_paths() {
        let dir = dir_with(&[("t/subject.txt", "S"), ("t/body.txt", "b")]);
        let t = Templates::load(dir.path()).unwrap();
        for name in ["../t", "t/subject.txt", "/etc/passwd", "T"] {
            assert!(
                matches!(
                    t.render(name, &Map::new()),
                    Err(Failure::UnknownName { .. })
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn every_broken_template_is_reported() {
        let dir = dir_with(&[
            ("ok/subject.txt", "S"),
            ("ok/body.txt", "b"),
            ("no_body/subject.txt", "S"),
            ("bad_syntax/subject.txt", "{{ unclosed"),
            ("bad_syntax/body.txt", "b"),
            ("Bad-Name/subject.txt", "S"),
        ]);
        let problems = Templates::load(dir.path()).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].starts_with("Bad-Name/"));
        assert!(problems[1].starts_with("bad_syntax/subject.txt"));
        assert!(problems[2].starts_with("no_body/body.txt"));
    }

    #[test]
    fn the_shipped_templates_render() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/templates");
        let t = Templates::load(&dir).unwrap();
        let order = t
            .render(
                "order_confirmation",
                &vars(json!({
                    "customer_name": "Ada", "order_id": "o-1", "total": "12.50 EUR",
                    "items": [{"name": "Tea", "quantity": 2}]
                })),
            )
            .unwrap();
        assert!(order.subject.contains("o-1"));
        assert!(order.text.contains("2 × Tea"), "{}", order.text);
        assert!(order.html.unwrap().contains("12.50 EUR"));
        let escalation = t
            .render(
                "approval_escalation",
                &vars(json!({
                    "approver_name": "Grace", "order_id": "o-1", "requested_by": "ada@example.com",
                    "amount": "12,000.00 EUR", "waiting_minutes": 60, "timeout_minutes": 1380,
                    "approve_url": "https://edge.example/v1/approvals/o-1?decision=approve",
                    "reject_url": "https://edge.example/v1/approvals/o-1?decision=reject"
                })),
            )
            .unwrap();
        assert!(escalation.subject.contains("o-1"));
        assert!(escalation.text.contains("60 minutes"));
        assert!(escalation.text.contains("1380 more minutes"));
    }
}
