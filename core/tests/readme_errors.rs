//! The README's error table is the code's: every row of the cause table in `### Errors` is
//! checked against `Cause` (status, kind, OpenAI type, Anthropic type, JSON-RPC code), and every
//! cause has a row.

use http::StatusCode;
use switchboard_core::Cause;

const ALL: &[Cause] = &[
    Cause::BadRequest,
    Cause::InvalidJson,
    Cause::PayloadTooLarge,
    Cause::HeadersTooLarge,
    Cause::Unauthenticated,
    Cause::Forbidden,
    Cause::NotFound,
    Cause::MethodNotAllowed,
    Cause::NotAcceptable,
    Cause::RateLimited,
    Cause::Overloaded,
    Cause::Timeout,
    Cause::Upstream,
    Cause::UpstreamStatus(StatusCode::BAD_REQUEST),
    Cause::NotImplemented,
    Cause::Internal,
];

fn unquote(cell: &str) -> &str {
    cell.trim().trim_matches('`')
}

#[test]
fn every_cause_has_a_readme_row_that_matches_the_code() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("\n### Errors\n")
        .nth(1)
        .expect("README has an `### Errors` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let rows: Vec<Vec<&str>> = section
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split(" | ").collect::<Vec<_>>())
        .filter(|cells| {
            cells.len() == 7 && cells[0].trim() != "cause" && !cells[0].starts_with("---")
        })
        .collect();
    assert!(rows.len() >= ALL.len(), "too few rows: {rows:?}");
    let mut seen = std::collections::HashSet::new();
    for row in &rows {
        let kind = unquote(row[2]);
        let cause = ALL
            .iter()
            .copied()
            .find(|c| c.kind() == kind)
            .unwrap_or_else(|| panic!("README kind `{kind}` is no cause in core"));
        seen.insert(kind);
        let status = row[1].trim();
        if let Ok(n) = status.parse::<u16>() {
            assert_eq!(cause.status().as_u16(), n, "status of `{kind}`");
        } else {
            assert!(
                matches!(cause, Cause::UpstreamStatus(_)),
                "`{kind}`: {status}"
            );
            continue;
        }
        assert_eq!(
            cause.openai_type(),
            unquote(row[3].split(" (").next().unwrap_or("")),
            "OpenAI type of `{kind}`"
        );
        assert_eq!(
            cause.anthropic_type(),
            unquote(row[4]),
            "Anthropic type of `{kind}`"
        );
        assert_eq!(
            cause.jsonrpc_code().to_string(),
            row[5].trim(),
            "JSON-RPC code of `{kind}`"
        );
    }
    for c in ALL {
        assert!(seen.contains(c.kind()), "no README row for `{}`", c.kind());
    }
}
