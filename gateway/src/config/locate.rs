//! Where each key path sits in the YAML text, so that problems found after parsing (unknown
//! keys, type errors, semantic rules) can be reported as `LINE:COL`. Built from the parser's
//! event stream, which carries source positions that the serde value tree loses.

use std::collections::HashMap;

use granit_parser::{Event, Parser};

use super::ConfigIssue;

/// Key path → 1-based (line, column) of the key (for mapping entries) or the item (for
/// sequence items).
#[derive(Debug, Default)]
pub(super) struct PathIndex {
    positions: HashMap<String, (usize, usize)>,
}

enum Frame {
    /// A mapping; `key` is the key whose value comes next, `None` while a key is expected.
    Map { path: String, key: Option<String> },
    /// A sequence and the index of the next item.
    Seq { path: String, idx: usize },
}

impl PathIndex {
    /// Indexes `text`; a YAML syntax error is returned as a located issue.
    pub(super) fn build(text: &str) -> Result<Self, ConfigIssue> {
        let mut index = PathIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        for ev in Parser::new_from_str(text) {
            let (event, span) = ev.map_err(|e| ConfigIssue {
                line: Some(e.marker().line()),
                col: Some(e.marker().col() + 1),
                path: String::new(),
                message: format!("invalid YAML: {}", e.info()),
            })?;
            let pos = (span.start.line(), span.start.col() + 1);
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Map {
                        path,
                        key: key @ None,
                    }) = stack.last_mut()
                    {
                        let child = join(path, &value);
                        index.positions.entry(child).or_insert(pos);
                        *key = Some(value.into_owned());
                    } else {
                        index.value_path(&stack, pos);
                        value_done(&mut stack);
                    }
                }
                Event::Alias(_) => {
                    index.value_path(&stack, pos);
                    value_done(&mut stack);
                }
                Event::MappingStart(..) => {
                    let path = index.value_path(&stack, pos);
                    stack.push(Frame::Map { path, key: None });
                }
                Event::SequenceStart(..) => {
                    let path = index.value_path(&stack, pos);
                    stack.push(Frame::Seq { path, idx: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    value_done(&mut stack);
                }
                _ => {}
            }
        }
        Ok(index)
    }

    /// Records and returns the path of a value node starting at `pos`.
    fn value_path(&mut self, stack: &[Frame], pos: (usize, usize)) -> String {
        let path = match stack.last() {
            None => String::new(),
            Some(Frame::Map { path, key }) => join(path, key.as_deref().unwrap_or("")),
            Some(Frame::Seq { path, idx }) => format!("{path}[{idx}]"),
        };
        self.positions.entry(path.clone()).or_insert(pos);
        path
    }

    /// The position of `path`, or of its nearest located ancestor.
    pub(super) fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// Builds a located issue for `path`.
    pub(super) fn issue(&self, path: &str, message: String) -> ConfigIssue {
        let pos = self.find(path);
        ConfigIssue {
            line: pos.map(|p| p.0),
            col: pos.map(|p| p.1),
            path: path.to_string(),
            message,
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A value finished: the parent mapping now expects a key, or the sequence moves on.
fn value_done(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Map { key, .. }) => *key = None,
        Some(Frame::Seq { idx, .. }) => *idx += 1,
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_keys_and_items() {
        let text = "admin:\n  bind: x\nlisteners:\n  - name: a\n    routes:\n      - name: r\n        match: {path: /x}\n  - name: b\n";
        let idx = PathIndex::build(text).unwrap();
        assert_eq!(idx.find("admin.bind"), Some((2, 3)));
        assert_eq!(idx.find("listeners[0].name"), Some((4, 5)));
        assert_eq!(idx.find("listeners[0].routes[0].match.path"), Some((7, 17)));
        assert_eq!(idx.find("listeners[1].name"), Some((8, 5)));
        assert_eq!(idx.find("listeners[1].routes[3].nothing"), Some((8, 5)));
    }

    #[test]
    fn syntax_error_is_located() {
        let err = PathIndex::build("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.line.is_some());
        assert!(err.message.starts_with("invalid YAML"));
    }
}
