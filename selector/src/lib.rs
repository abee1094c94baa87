//! Parses Kubernetes label selector strings, as `kubectl -l` and the API's
//! `labelSelector` parameter take them, into [`kube::core::Selector`].
//!
//! Both the host (answering a guest's `list-objects`) and the SDK's native
//! test harness use this one parser, so a selector means the same in tests
//! as in the cluster.
//!
//! ```
//! use std::collections::BTreeMap;
//! use kube::core::SelectorExt;
//!
//! let selector = bosun_selector::parse("app=web, env in (prod,staging), !legacy").unwrap();
//! let labels = BTreeMap::from([("app".to_string(), "web".to_string()), ("env".to_string(), "prod".to_string())]);
//! assert!(selector.matches(&labels));
//! ```

use kube::core::{Expression, Selector};

/// A selector string that is not valid Kubernetes syntax, or that is over
/// the bounds it was parsed within.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector {selector:?}: {problem}")]
pub struct ParseError {
    /// The start of the selector: enough to recognise it, never the whole
    /// of a hostile one.
    selector: String,
    problem: String,
}

/// The most of a selector an error quotes.
const QUOTED: usize = 64;

impl ParseError {
    fn new(selector: &str, problem: String) -> Self {
        let mut end = selector.len().min(QUOTED);
        while !selector.is_char_boundary(end) {
            end -= 1;
        }
        let quoted = if end < selector.len() {
            format!("{}…", &selector[..end])
        } else {
            selector.to_owned()
        };
        ParseError {
            selector: quoted,
            problem,
        }
    }
}

/// How much of a selector [`parse_within`] takes: whoever parses a
/// selector someone else wrote (a guest's `list-objects`) bounds the work
/// and memory it may cost before parsing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The longest selector, in bytes.
    pub bytes: usize,
    /// The most comma-separated requirements.
    pub requirements: usize,
}

impl Default for Bounds {
    /// 4 KiB and 64 requirements: far beyond what a reconciler writes
    /// (`app=web,tier in (a,b)`), far below what costs the host anything.
    fn default() -> Self {
        Bounds {
            bytes: 4096,
            requirements: 64,
        }
    }
}

/// Parses a label selector: comma-separated requirements of the forms
/// `key`, `!key`, `key=value`, `key==value`, `key!=value`,
/// `key in (a,b)` and `key notin (a,b)`. An empty string selects everything.
/// Unbounded: for selectors from someone else, use [`parse_within`].
pub fn parse(selector: &str) -> Result<Selector, ParseError> {
    parse_within(
        selector,
        Bounds {
            bytes: usize::MAX,
            requirements: usize::MAX,
        },
    )
}

/// [`parse`], refusing a selector over `bounds` before doing any work in
/// proportion to it.
pub fn parse_within(selector: &str, bounds: Bounds) -> Result<Selector, ParseError> {
    let fail = |problem: String| ParseError::new(selector, problem);
    if selector.len() > bounds.bytes {
        return Err(fail(format!(
            "it is {} bytes long; at most {} are taken",
            selector.len(),
            bounds.bytes
        )));
    }
    split_requirements(selector, bounds.requirements)
        .map_err(&fail)?
        .into_iter()
        .map(|requirement| parse_requirement(requirement).map_err(&fail))
        .collect()
}

/// Splits on commas that are not inside a `( … )` value set, at most
/// `most` parts.
fn split_requirements(selector: &str, most: usize) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (at, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("unbalanced ')'")?,
            ',' if depth == 0 => {
                parts.push(&selector[start..at]);
                start = at + 1;
                if parts.len() >= most {
                    return Err(format!("it has more than {most} requirements"));
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    parts.push(&selector[start..]);
    let parts: Vec<&str> = parts.into_iter().map(str::trim).collect();
    if parts.len() == 1 && parts[0].is_empty() {
        return Ok(Vec::new());
    }
    if parts.iter().any(|p| p.is_empty()) {
        return Err("empty requirement".into());
    }
    Ok(parts)
}

fn parse_requirement(requirement: &str) -> Result<Expression, String> {
    if let Some(key) = requirement.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(label_key(key.trim())?));
    }
    if let Some((key, value)) = requirement.split_once("!=") {
        return Ok(Expression::NotEqual(
            label_key(key.trim())?,
            label_value(value.trim())?,
        ));
    }
    if let Some((key, value)) = requirement
        .split_once("==")
        .or_else(|| requirement.split_once('='))
    {
        return Ok(Expression::Equal(
            label_key(key.trim())?,
            label_value(value.trim())?,
        ));
    }
    let mut words = requirement.splitn(2, char::is_whitespace);
    let key = label_key(words.next().unwrap_or_default())?;
    let Some(rest) = words.next().map(str::trim) else {
        return Ok(Expression::Exists(key));
    };
    let (operator, set) = rest
        .split_once(char::is_whitespace)
        .map(|(op, set)| (op, set.trim()))
        .or_else(|| rest.find('(').map(|at| (rest[..at].trim(), &rest[at..])))
        .ok_or_else(|| format!("expected 'in' or 'notin' after {key:?}"))?;
    let values = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised value set after {operator:?}"))?
        .split(',')
        .map(|v| label_value(v.trim()))
        .collect::<Result<_, _>>()?;
    match operator {
        "in" => Ok(Expression::In(key, values)),
        "notin" => Ok(Expression::NotIn(key, values)),
        other => Err(format!(
            "unknown operator {other:?}; expected 'in' or 'notin'"
        )),
    }
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at
/// most 63 alphanumerics, `-`, `_` or `.`, beginning and ending alphanumeric.
fn label_key(key: &str) -> Result<String, String> {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty()
                || prefix.len() > 253
                || !prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(format!("invalid label key prefix in {key:?}"));
            }
            name
        }
        None => key,
    };
    if name.is_empty() || !is_label_name(name) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(key.to_owned())
}

/// A label value: empty, or like a label name.
fn label_value(value: &str) -> Result<String, String> {
    if value.is_empty() || is_label_name(value) {
        Ok(value.to_owned())
    } else {
        Err(format!("invalid label value {value:?}"))
    }
}

fn is_label_name(name: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    name.len() <= 63
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::core::SelectorExt;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn matches(selector: &str, pairs: &[(&str, &str)]) -> bool {
        parse(selector).unwrap().matches(&labels(pairs))
    }

    #[test]
    fn a_selector_over_its_bounds_is_refused_before_it_is_parsed_and_never_quoted_whole() {
        let bounds = Bounds {
            bytes: 64,
            requirements: 3,
        };
        assert!(parse_within("a,b,c", bounds).is_ok());
        let error = parse_within("a,b,c,d", bounds).unwrap_err().to_string();
        assert!(error.contains("more than 3 requirements"), "{error}");
        let hostile = "!x,".repeat(1_000_000);
        let error = parse_within(&hostile, Bounds::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("3000000 bytes long"), "{error}");
        assert!(error.len() < 200, "the error quotes {} bytes", error.len());
        // Commas inside a value set are not requirements.
        assert!(parse_within("env in (a,b,c,d,e)", bounds).is_ok());
    }

    #[test]
    fn empty_selects_everything() {
        assert!(matches("", &[]));
        assert!(matches("  ", &[("a", "b")]));
    }

    #[test]
    fn equality_forms() {
        assert!(matches("app=web", &[("app", "web")]));
        assert!(matches("app==web", &[("app", "web")]));
        assert!(!matches("app=web", &[("app", "db")]));
        assert!(matches("app!=web", &[("app", "db")]));
        assert!(matches("app!=web", &[]));
        assert!(!matches("app!=web", &[("app", "web")]));
    }

    #[test]
    fn existence_forms() {
        assert!(matches("legacy", &[("legacy", "")]));
        assert!(!matches("legacy", &[]));
        assert!(matches("!legacy", &[]));
        assert!(!matches("! legacy", &[("legacy", "x")]));
    }

    #[test]
    fn set_forms_and_commas_inside_sets() {
        let selector = "app=web, env in (prod, staging), tier notin (cache), !legacy";
        assert!(matches(
            selector,
            &[("app", "web"), ("env", "prod"), ("tier", "front")]
        ));
        assert!(!matches(selector, &[("app", "web"), ("env", "dev")]));
        assert!(!matches(
            selector,
            &[("app", "web"), ("env", "prod"), ("tier", "cache")]
        ));
        assert!(!matches(
            selector,
            &[("app", "web"), ("env", "prod"), ("legacy", "1")]
        ));
        assert!(matches("env in(prod)", &[("env", "prod")]));
    }

    #[test]
    fn prefixed_keys() {
        assert!(matches(
            "app.kubernetes.io/name=web",
            &[("app.kubernetes.io/name", "web")]
        ));
    }

    #[test]
    fn rejects_bad_syntax_with_the_selector_in_the_message() {
        for bad in [
            "=web",
            "a,,b",
            "env in prod",
            "env in (a",
            "env of (a)",
            "bad key=1",
            "-a=b",
            "a=b c",
        ] {
            let error = parse(bad).expect_err(bad);
            assert!(error.to_string().contains(bad), "{error}");
        }
    }

    #[test]
    fn an_empty_value_is_a_value() {
        assert!(matches("app=", &[("app", "")]));
        assert!(!matches("app=", &[("app", "web")]));
    }
}
