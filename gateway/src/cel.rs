//! The CEL dialect of `policies.authz.rules`: one shared environment, the variables a rule may
//! use, and compiling a rule. Config validation compiles every rule to report errors with their
//! key path; [`crate::authz`] compiles them again into an [`crate::authz::Authorizer`].

use std::sync::{Arc, OnceLock};

use cel::{Env, Program};

/// Top-level variables a rule may use.
pub const VARIABLES: &[&str] = &["request", "jwt", "api_key", "mcp", "llm"];

/// The CEL environment every rule is compiled and evaluated in.
pub fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib()))
}

/// A compiled rule.
pub struct Rule {
    /// The compiled program.
    pub program: Program,
    /// Mentions `mcp` or `llm`, so only the backend can decide it.
    pub deferred: bool,
}

/// Compiles one rule; the error is a message for the user.
pub fn compile_rule(src: &str) -> Result<Rule, String> {
    if src.trim().is_empty() {
        return Err("empty rule".into());
    }
    let program = env()
        .compile(src)
        .map_err(|e| format!("not a valid CEL expression: {}", one_line(&e.to_string())))?;
    let refs = program.references();
    if let Some(bad) = refs
        .variables()
        .into_iter()
        .find(|v| !VARIABLES.contains(v))
    {
        return Err(format!(
            "unknown variable `{bad}`; rules may use {}",
            VARIABLES.join(", ")
        ));
    }
    let deferred = refs.has_variable("mcp") || refs.has_variable("llm");
    Ok(Rule { program, deferred })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
