//! The configuration file: serde types, loading (environment expansion, unknown-key checks,
//! typed parsing) and semantic validation, with every problem located as `FILE:LINE:COL`.
//!
//! Loading is a pipeline of pure steps so that `switchboard validate`, the proxy's start-up and
//! hot reload share one code path: [`expand`] → [`locate::PathIndex`] (YAML positions) →
//! [`unknown`] (every unknown key, against the JSON Schema derived from these types) → typed
//! deserialization → [`validate`] (rules that need the whole file) → [`warnings`] (settings that
//! can have no effect; reported, not refused).

mod auth;
mod expand;
mod guardrails;
mod listener;
mod locate;
mod policies;
mod types;
mod unknown;
mod validate;
mod warnings;

use std::fmt;
use std::path::Path;

pub use auth::*;
pub use guardrails::*;
pub use listener::*;
pub use policies::*;
pub use switchboard_llm::config::expose_secrets;
pub use types::*;
pub use validate::{compile_regex, covers, parse_bind, policies_issues, prefix_matches};

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigIssue {
    /// 1-based line, when the problem could be located.
    pub line: Option<usize>,
    /// 1-based column, when the problem could be located.
    pub col: Option<usize>,
    /// The key path, e.g. `listeners[0].routes[1].match.path_prefix`; empty for the whole file.
    pub path: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl ConfigIssue {
    /// Formats the issue the way `switchboard validate` prints it: `FILE:LINE:COL: path: message`.
    pub fn display_with_file<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        struct D<'a>(&'a ConfigIssue, &'a str);
        impl fmt::Display for D<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let i = self.0;
                write!(
                    f,
                    "{}:{}:{}: ",
                    self.1,
                    i.line.unwrap_or(1),
                    i.col.unwrap_or(1)
                )?;
                if i.path.is_empty() {
                    write!(f, "{}", i.message)
                } else {
                    write!(f, "{}: {}", i.path, i.message)
                }
            }
        }
        D(self, file)
    }
}

/// Every problem found in one configuration file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigErrors {
    /// The file the issues refer to, as given by the user.
    pub file: String,
    /// The issues, sorted by position.
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, issue) in self.issues.iter().enumerate() {
            if n > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", issue.display_with_file(&self.file))?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads, expands, parses and validates the configuration file at `path`. Settings that can
/// have no effect, and what is left out (operations of OpenAPI documents), are logged as
/// warnings.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let (config, warnings) = load_file_with_warnings(path)?;
    for w in &warnings {
        tracing::warn!(key = %w.path, "config warning: {}", w.message);
    }
    Ok(config)
}

/// The folder relative paths of the config file at `path` resolve against.
pub fn base_dir_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

/// [`load_file`], returning the warnings (located like errors) instead of logging them.
pub fn load_file_with_warnings(path: &Path) -> Result<(Config, Vec<ConfigIssue>), ConfigErrors> {
    load_file_indexed(path).map(|(config, warnings, _)| (config, warnings))
}

fn load_file_indexed(
    path: &Path,
) -> Result<(Config, Vec<ConfigIssue>, locate::PathIndex), ConfigErrors> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_indexed(
            &text,
            &file,
            &|name| std::env::var(name).ok(),
            base_dir_of(path),
        ),
        Err(e) => Err(ConfigErrors {
            file,
            issues: vec![ConfigIssue {
                line: None,
                col: None,
                path: String::new(),
                message: format!("cannot read the file: {e}"),
            }],
        }),
    }
}

/// [`load_file_with_warnings`], with a [`Locator`] for problems found later (`switchboard
/// validate`'s network checks).
pub fn load_file_located(path: &Path) -> Result<(Config, Vec<ConfigIssue>, Locator), ConfigErrors> {
    load_file_indexed(path).map(|(config, warnings, index)| (config, warnings, Locator(index)))
}

/// Places a problem found after loading at its key's line and column in the file.
#[derive(Debug)]
pub struct Locator(locate::PathIndex);

impl Locator {
    /// An issue at key path `path` (`listeners[0].routes[1].mcp`), located when the path is
    /// in the file.
    pub fn issue(&self, path: &str, message: String) -> ConfigIssue {
        self.0.issue(path, message)
    }
}

/// Parses and validates configuration text. `env` resolves `${VAR}` references (injected so
/// tests need not touch the process environment).
pub fn load_str(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    load_str_with_warnings(text, file, env).map(|(config, _)| config)
}

/// [`load_str`], with the settings that can have no effect, located like errors. Relative
/// paths the load reads (`openapi.spec` files) resolve against the working directory.
pub fn load_str_with_warnings(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, Vec<ConfigIssue>), ConfigErrors> {
    load_indexed(text, file, env, Path::new("")).map(|(config, warnings, _)| (config, warnings))
}

/// [`load_str`], with relative paths resolved against `base_dir` (for text that stands for a
/// file there, e.g. a control plane's push to a gateway started from a file).
pub fn load_str_in(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
    base_dir: &Path,
) -> Result<Config, ConfigErrors> {
    load_indexed(text, file, env, base_dir).map(|(config, _, _)| config)
}

fn load_indexed(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
    base_dir: &Path,
) -> Result<(Config, Vec<ConfigIssue>, locate::PathIndex), ConfigErrors> {
    let fail = |mut issues: Vec<ConfigIssue>| {
        issues.sort_by_key(|i| (i.line.unwrap_or(0), i.col.unwrap_or(0)));
        Err(ConfigErrors {
            file: file.to_string(),
            issues,
        })
    };

    let (expanded, mut issues) = expand::expand(text, env);
    if !issues.is_empty() {
        // What follows would only report the damage an unset variable did.
        return fail(issues);
    }
    let index = match locate::PathIndex::build(&expanded) {
        Ok(index) => index,
        Err(syntax) => return fail(vec![syntax]),
    };
    let value: serde_json::Value = if expanded.trim().is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        match yaml_serde::from_str(&expanded) {
            Ok(v) => v,
            Err(e) => {
                let (line, col) = yaml_location(&e);
                issues.push(ConfigIssue {
                    line,
                    col,
                    path: String::new(),
                    message: strip_yaml_position(&e.to_string()),
                });
                return fail(issues);
            }
        }
    };

    for (path, message) in unknown::unknown_keys(&value) {
        issues.push(index.issue(&path, message));
    }
    if !issues.is_empty() {
        return fail(issues);
    }

    let config: Config = match serde_path_to_error::deserialize(value) {
        Ok(c) => c,
        Err(e) => {
            let path = json_path(e.path());
            let message = e.inner().to_string();
            return fail(vec![index.issue(&path, message)]);
        }
    };

    for (path, message) in validate::validate(&config, base_dir) {
        issues.push(index.issue(&path, message));
    }
    if !issues.is_empty() {
        return fail(issues);
    }
    let mut warnings: Vec<ConfigIssue> = warnings::warnings(&config, base_dir)
        .into_iter()
        .map(|(path, message)| index.issue(&path, message))
        .collect();
    warnings.sort_by_key(|i| (i.line.unwrap_or(0), i.col.unwrap_or(0)));
    Ok((config, warnings, index))
}

/// The JSON Schema of the configuration file, derived from the types.
#[allow(
    clippy::expect_used,
    reason = "a derived schema is plain data; serializing it cannot fail"
)]
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Config);
    serde_json::to_value(schema).expect("a derived schema always serializes")
}

/// Converts serde_path_to_error's path into this project's `a.b[0].c` notation.
fn json_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}

fn yaml_location(e: &yaml_serde::Error) -> (Option<usize>, Option<usize>) {
    match e.location() {
        Some(loc) => (Some(loc.line()), Some(loc.column())),
        None => (None, None),
    }
}

/// yaml errors end with " at line L column C"; the position is printed separately.
fn strip_yaml_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}
