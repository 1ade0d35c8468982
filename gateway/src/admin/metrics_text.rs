//! Counters read back from the gateway's Prometheus text: the UI shows the same numbers a
//! scraper sees (MCP calls per target, token usage and cost per model, A2A calls per route),
//! without a second set of counters on the request path.

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `k` (empty when absent).
    pub fn label(&self, k: &str) -> &str {
        self.labels
            .iter()
            .find(|(name, _)| name == k)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// The samples of every metric whose name ends with `suffix` (the registry prefixes names).
pub(super) fn samples(text: &str, suffix: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_line)
        .filter(|s| s.name.ends_with(suffix))
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find('{') {
        Some(i) => (line.get(..i)?, line.get(i..)?),
        None => {
            let (n, v) = line.split_once(' ')?;
            return Some(Sample {
                name: n.to_string(),
                labels: Vec::new(),
                value: v.split_whitespace().next()?.parse().ok()?,
            });
        }
    };
    let mut labels = Vec::new();
    let mut chars = rest.char_indices().skip(1).peekable();
    let mut end = None;
    loop {
        // label name
        let mut key = String::new();
        for (i, c) in chars.by_ref() {
            match c {
                '=' => break,
                '}' => {
                    end = Some(i);
                    break;
                }
                ',' | ' ' => {}
                c => key.push(c),
            }
        }
        if end.is_some() {
            break;
        }
        // quoted value
        if chars.next().map(|(_, c)| c) != Some('"') {
            return None;
        }
        let mut value = String::new();
        let mut escaped = false;
        for (_, c) in chars.by_ref() {
            match (escaped, c) {
                (true, 'n') => {
                    value.push('\n');
                    escaped = false;
                }
                (true, c) => {
                    value.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => break,
                (false, c) => value.push(c),
            }
        }
        labels.push((key, value));
        chars.peek()?;
    }
    let value = rest
        .get(end? + 1..)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_and_values() {
        let text = "# HELP x y\nswitchboard_mcp_requests_total{method=\"tools/call\",target=\"a \\\"b\\\"\",result=\"ok\"} 3\nup 1\n";
        let s = samples(text, "mcp_requests_total");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].label("method"), "tools/call");
        assert_eq!(s[0].label("target"), "a \"b\"");
        assert_eq!(s[0].value, 3.0);
        assert_eq!(samples(text, "up")[0].value, 1.0);
    }
}
