//! The CEL dialect of routing rules (`llm.virtual_models[].rules[].when`): one environment, the
//! variables a rule may use, and compiling a rule (for config validation and for
//! [`crate::routing`]). A leaf: the config and the router both use it.

use std::sync::{Arc, OnceLock};

use cel::{Env, Program};

/// Top-level variables a routing rule may use.
pub const VARIABLES: &[&str] = &["request", "caller", "llm"];

/// The environment every routing rule is compiled and run in.
pub(crate) fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib()))
}

/// Compiles one rule; the error is a message for the user.
pub fn compile_rule(src: &str) -> Result<Program, String> {
    if src.trim().is_empty() {
        return Err("empty rule".into());
    }
    let program = env().compile(src).map_err(|e| {
        let msg = e.to_string();
        format!(
            "not a valid CEL expression: {}",
            msg.split_whitespace().collect::<Vec<_>>().join(" ")
        )
    })?;
    if let Some(bad) = program
        .references()
        .variables()
        .into_iter()
        .find(|v| !VARIABLES.contains(v))
    {
        return Err(format!(
            "unknown variable `{bad}`; routing rules may use {}",
            VARIABLES.join(", ")
        ));
    }
    Ok(program)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rules_are_named() {
        assert!(compile_rule("llm.tools &&").unwrap_err().contains("CEL"));
        assert!(
            compile_rule("jwt.sub == 'a'")
                .unwrap_err()
                .contains("unknown variable `jwt`")
        );
        assert!(compile_rule("").is_err());
        assert!(compile_rule("llm.prompt_tokens > 10 && caller.team == 'ml'").is_ok());
    }
}
