//! `${VAR}` and `${VAR:-default}` expansion on the raw text, before YAML parsing, so that a
//! variable may hold any scalar (a port, a boolean, a key). `$${` is a literal `${`. Whole-line
//! comments are left alone so that documentation inside a config never fails to expand.

use super::ConfigIssue;

/// Expands references in `text`; returns the expanded text and one issue per reference to an
/// unset variable that has no default (the reference expands to the empty string).
pub(super) fn expand(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> (String, Vec<ConfigIssue>) {
    let mut out = String::with_capacity(text.len());
    let mut issues = Vec::new();
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') || !line.contains('$') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        let mut col = 1;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            col += rest[..pos].chars().count();
            let after = &rest[pos..];
            if let Some(stripped) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = stripped;
                col += 3;
                continue;
            }
            if !after.starts_with("${") {
                out.push('$');
                rest = &after[1..];
                col += 1;
                continue;
            }
            let Some(end) = after.find('}') else {
                issues.push(issue(
                    line_no,
                    col,
                    "unterminated `${`: add a closing `}`".into(),
                ));
                out.push_str(after);
                rest = "";
                break;
            };
            let inner = &after[2..end];
            let (name, default) = match inner.find(":-") {
                Some(i) => (&inner[..i], Some(&inner[i + 2..])),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                issues.push(issue(
                    line_no,
                    col,
                    format!("`${{{inner}}}` is not a valid variable reference (use ${{NAME}} or ${{NAME:-default}})"),
                ));
            } else {
                match (env(name).filter(|v| !(v.is_empty() && default.is_some())), default) {
                    (Some(value), _) => out.push_str(&value),
                    (None, Some(default)) => out.push_str(default),
                    (None, None) => issues.push(issue(
                        line_no,
                        col,
                        format!("environment variable {name} is not set and has no default (write ${{{name}:-default}})"),
                    )),
                }
            }
            col += after[..=end].chars().count();
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    (out, issues)
}

fn issue(line_no: usize, col: usize, message: String) -> ConfigIssue {
    ConfigIssue {
        line: Some(line_no + 1),
        col: Some(col),
        path: String::new(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("8080".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_variables_and_defaults() {
        let (out, issues) = expand("bind: 127.0.0.1:${PORT}\nkey: ${NOPE:-dflt}\n", &env);
        assert_eq!(out, "bind: 127.0.0.1:8080\nkey: dflt\n");
        assert!(issues.is_empty());
    }

    #[test]
    fn empty_variable_takes_the_default() {
        let (out, _) = expand("a: ${EMPTY:-x}", &env);
        assert_eq!(out, "a: x");
    }

    #[test]
    fn escaped_and_comment_lines_are_literal() {
        let (out, issues) = expand("# uses ${UNSET}\na: $${PORT} $x\n", &env);
        assert_eq!(out, "# uses ${UNSET}\na: ${PORT} $x\n");
        assert!(issues.is_empty());
    }

    #[test]
    fn unset_variable_is_located() {
        let (_, issues) = expand("a: 1\nb: x${MISSING}\n", &env);
        assert_eq!(issues.len(), 1);
        assert_eq!((issues[0].line, issues[0].col), (Some(2), Some(5)));
        assert!(
            issues[0].message.contains("MISSING"),
            "{}",
            issues[0].message
        );
    }

    #[test]
    fn bad_reference_and_unterminated() {
        let (_, issues) = expand("a: ${bad name}\nb: ${OPEN\n", &env);
        assert_eq!(issues.len(), 2);
        assert!(issues[1].message.contains("unterminated"));
    }
}
