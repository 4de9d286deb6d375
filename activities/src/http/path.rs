//! Turning a workflow's path template into a URL that cannot leave the service's base URL.
//!
//! Two layers: the template and its values are checked character by character (no `..`, no
//! `%`-escapes in the template, no `//`, `\`, `?`, `#`, no `/` inside a value), and the final
//! URL is compared with what was intended (same origin, path exactly base path + rendered
//! path), so a parser quirk cannot turn a checked path into a different one.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;

use crate::failure::Failure;

/// Characters left as they are in a path-parameter value: RFC 3986 unreserved.
const SEGMENT_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Characters allowed literally in a template (RFC 3986 `pchar` minus `%`, plus `/`).
fn allowed_literal(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/".contains(c)
}

/// The path below `base` for `template` with `params` filled in, percent-encoded, without a
/// leading `/` (the base path ends with one).
pub(crate) fn render(template: &str, params: &BTreeMap<String, String>) -> Result<String, Failure> {
    let escape = |why: &str| Failure::PathEscape(format!("{template:?}: {why}"));
    let body = template.strip_prefix('/').unwrap_or(template);
    if body.starts_with('/') {
        return Err(escape("a path starting with `//` names another host"));
    }
    let mut out = String::with_capacity(body.len());
    let mut used = std::collections::BTreeSet::new();
    let mut rest = body;
    while let Some(c) = rest.chars().next() {
        if c == '{' {
            let end = rest
                .find('}')
                .ok_or_else(|| Failure::invalid_input(format!("{template:?}: unclosed `{{`")))?;
            let name = &rest[1..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Failure::invalid_input(format!(
                    "{template:?}: placeholder `{{{name}}}` is not an identifier"
                )));
            }
            let value = params.get(name).ok_or_else(|| {
                Failure::invalid_input(format!("{template:?}: no value for `{{{name}}}`"))
            })?;
            check_value(name, value)?;
            out.extend(utf8_percent_encode(value, SEGMENT_VALUE));
            used.insert(name);
            rest = &rest[end + 1..];
        } else if c == '}' {
            return Err(Failure::invalid_input(format!(
                "{template:?}: unmatched `}}`"
            )));
        } else if c == '%' {
            return Err(escape(
                "percent-escapes are not allowed in the template (put the value in path_params)",
            ));
        } else if c == '\\' {
            return Err(escape("backslashes are not allowed"));
        } else if c == '?' || c == '#' {
            return Err(escape(
                "put query parameters in `query`; fragments are not sent",
            ));
        } else if !allowed_literal(c) {
            return Err(escape(&format!("character {c:?} is not allowed")));
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    for segment in body.split('/') {
        if segment == "." || segment == ".." {
            return Err(escape("`.` and `..` segments are not allowed"));
        }
    }
    if out.contains("//") {
        return Err(escape("empty path segments (`//`) are not allowed"));
    }
    if let Some(unused) = params.keys().find(|k| !used.contains(k.as_str())) {
        return Err(Failure::invalid_input(format!(
            "{template:?}: path parameter `{unused}` is not used"
        )));
    }
    Ok(out)
}

fn check_value(name: &str, value: &str) -> Result<(), Failure> {
    let escape = |why: &str| Failure::PathEscape(format!("path parameter `{name}`: {why}"));
    if value.is_empty() {
        return Err(Failure::invalid_input(format!(
            "path parameter `{name}` is empty"
        )));
    }
    if value == "." || value == ".." {
        return Err(escape("`.` and `..` are not allowed"));
    }
    if value.contains('/') || value.contains('\\') {
        return Err(escape("`/` and `\\` are not allowed inside a value"));
    }
    if value.chars().any(char::is_control) {
        return Err(escape("control characters are not allowed"));
    }
    Ok(())
}

/// `base` (whose path ends with `/`) joined with a rendered path, verified to stay below it.
pub(crate) fn join(base: &Url, rendered: &str) -> Result<Url, Failure> {
    let intended_path = format!("{}{rendered}", base.path());
    let mut url = base.clone();
    url.set_path(&intended_path);
    if url.origin() != base.origin() || url.path() != intended_path {
        return Err(Failure::PathEscape(format!(
            "{rendered:?} does not stay below {base}"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_and_encodes_values() {
        let p = params(&[("id", "a b&c?d#e%2F"), ("n", "ü")]);
        assert_eq!(
            render("/orders/{id}/items/{n}.json", &p).unwrap(),
            "orders/a%20b%26c%3Fd%23e%252F/items/%C3%BC.json"
        );
        assert_eq!(render("", &params(&[])).unwrap(), "");
        assert_eq!(render("/", &params(&[])).unwrap(), "");
        assert_eq!(
            render("v1/items:search", &params(&[])).unwrap(),
            "v1/items:search"
        );
    }

    #[test]
    fn escapes_are_refused() {
        let none = params(&[]);
        for template in [
            "../admin",
            "/a/../../b",
            "/a/./b",
            "..",
            "//evil.example/x",
            "http://evil.example/x",
            "https:/\\evil.example",
            "/a%2Fb",
            "/%2e%2e/admin",
            "/a\\..\\b",
            "/a?admin=1",
            "/a#x",
            "/a//b",
            "/a b",
            "/a\nb",
        ] {
            let err = render(template, &none).unwrap_err();
            assert!(
                matches!(err, Failure::PathEscape(_)),
                "{template:?}: {err:?}"
            );
        }
        for value in ["..", ".", "a/b", "a\\b", "..\\x", "a\0"] {
            let err = render("/x/{v}", &params(&[("v", value)])).unwrap_err();
            assert!(matches!(err, Failure::PathEscape(_)), "{value:?}: {err:?}");
        }
    }

    #[test]
    fn template_mistakes_are_invalid_input() {
        for (template, p) in [
            ("/x/{id", params(&[("id", "1")])),
            ("/x/{id}", params(&[])),
            ("/x/{id}", params(&[("id", "1"), ("extra", "2")])),
            ("/x/{}", params(&[])),
            ("/x/{id}", params(&[("id", "")])),
        ] {
            let err = render(template, &p).unwrap_err();
            assert!(
                matches!(err, Failure::InvalidInput(_)),
                "{template:?}: {err:?}"
            );
        }
    }

    #[test]
    fn joined_urls_stay_below_the_base() {
        let base = Url::parse("https://api.example.com/v1/").unwrap();
        assert_eq!(
            join(&base, "orders/a%2Fb").unwrap().as_str(),
            "https://api.example.com/v1/orders/a%2Fb"
        );
        // Defence in depth: even if a dot segment slipped through, the URL parser's
        // normalisation is caught.
        assert!(join(&base, "../admin").is_err());
        assert!(join(&base, "a/%2e%2e/%2e%2e/admin").is_err());
    }
}
