//! A positioned YAML tree built from saphyr-parser events.
//!
//! serde-saphyr gives values but no positions; the editor needs to know exactly where each
//! list item starts and ends in the original bytes, so this module keeps byte offsets.
//! saphyr's span end for quoted scalars runs past the closing quote (up to a trailing comment),
//! so scalar extents are measured here from the source text instead of trusted.

use saphyr_parser::{Event, Parser, ScalarStyle};

use super::ManifestError;

/// A byte position in the source, with the 1-based line and column a person would look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub byte: usize,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Block,
}

#[derive(Debug, Clone)]
pub enum Node {
    Scalar {
        value: String,
        style: Style,
        start: Pos,
        /// Byte just past the scalar's last character.
        end: usize,
        /// An anchor or a tag precedes the scalar.
        has_properties: bool,
    },
    Seq {
        items: Vec<Node>,
        start: Pos,
        flow: bool,
        has_properties: bool,
    },
    Map {
        entries: Vec<(Node, Node)>,
        start: Pos,
    },
    Alias {
        start: Pos,
    },
}

impl Node {
    pub fn start(&self) -> Pos {
        match self {
            Node::Scalar { start, .. }
            | Node::Seq { start, .. }
            | Node::Map { start, .. }
            | Node::Alias { start } => *start,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The value of `key` in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map { entries, .. } => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The key node for `key` in a mapping node (for error positions).
    pub fn key_node(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map { entries, .. } => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(k, _)| k),
            _ => None,
        }
    }
}

/// Maps saphyr's character indices to byte offsets.
struct Offsets {
    byte_of_char: Vec<usize>,
}

impl Offsets {
    fn new(text: &str) -> Self {
        let mut byte_of_char: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        byte_of_char.push(text.len());
        Offsets { byte_of_char }
    }

    fn pos(&self, marker: &saphyr_parser::Marker) -> Pos {
        let index = marker.index().min(self.byte_of_char.len() - 1);
        Pos {
            byte: self.byte_of_char[index],
            line: marker.line(),
            col: marker.col() + 1,
        }
    }
}

/// Parses exactly one YAML document into a positioned tree.
pub fn parse_document(text: &str) -> Result<Node, ManifestError> {
    let offsets = Offsets::new(text);
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder {
        text,
        stack: Vec::new(),
        root: None,
        documents: 0,
    };
    for item in &mut parser {
        let (event, span) = item.map_err(|e| {
            let m = e.marker();
            ManifestError::at(
                crate::manifest::ErrorKind::InvalidYaml(e.info().to_string()),
                m.line(),
                m.col() + 1,
            )
        })?;
        let start = offsets.pos(&span.start);
        builder.event(event, start)?;
    }
    builder
        .root
        .ok_or(ManifestError::new(crate::manifest::ErrorKind::Empty))
}

enum Open {
    Seq {
        items: Vec<Node>,
        start: Pos,
        flow: bool,
        has_properties: bool,
    },
    Map {
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        start: Pos,
    },
}

struct Builder<'t> {
    text: &'t str,
    stack: Vec<Open>,
    root: Option<Node>,
    documents: usize,
}

impl Builder<'_> {
    fn event(&mut self, event: Event<'_>, start: Pos) -> Result<(), ManifestError> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(ManifestError::at(
                        crate::manifest::ErrorKind::MultipleDocuments,
                        start.line,
                        start.col,
                    ));
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                let has_properties = anchor != 0 || tag.is_some();
                let (style, end) = self.scalar_extent(style, start, has_properties, &value);
                self.push(Node::Scalar {
                    value: value.into_owned(),
                    style,
                    start,
                    end,
                    has_properties,
                })?;
            }
            Event::SequenceStart(anchor, tag) => {
                let flow = self.text[start.byte..].starts_with('[');
                self.stack.push(Open::Seq {
                    items: Vec::new(),
                    start,
                    flow,
                    has_properties: anchor != 0 || tag.is_some(),
                });
            }
            Event::MappingStart(_, _) => self.stack.push(Open::Map {
                entries: Vec::new(),
                pending_key: None,
                start,
            }),
            Event::SequenceEnd => match self.stack.pop() {
                Some(Open::Seq {
                    items,
                    start,
                    flow,
                    has_properties,
                }) => self.push(Node::Seq {
                    items,
                    start,
                    flow,
                    has_properties,
                })?,
                _ => unreachable!("saphyr emits balanced events"),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Open::Map { entries, start, .. }) => {
                    self.push(Node::Map { entries, start })?
                }
                _ => unreachable!("saphyr emits balanced events"),
            },
            Event::Alias(_) => self.push(Node::Alias { start })?,
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn push(&mut self, node: Node) -> Result<(), ManifestError> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
        Ok(())
    }

    /// Where the scalar's own text ends in the source. With properties (`&a`, `!!str`) the
    /// start points at the properties; such items are refused in argument lists anyway, so the
    /// end is only needed to be conservative there.
    fn scalar_extent(
        &self,
        style: ScalarStyle,
        start: Pos,
        has_properties: bool,
        value: &str,
    ) -> (Style, usize) {
        let rest = &self.text[start.byte..];
        let style = match style {
            ScalarStyle::Plain => Style::Plain,
            ScalarStyle::SingleQuoted => Style::SingleQuoted,
            ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
            _ => Style::Block,
        };
        if has_properties {
            return (style, start.byte);
        }
        let len = match style {
            Style::DoubleQuoted => {
                quoted_len(
                    rest,
                    '"',
                    |bytes, i| {
                        if bytes[i] == b'\\' { Some(2) } else { None }
                    },
                )
            }
            Style::SingleQuoted => quoted_len(rest, '\'', |bytes, i| {
                if bytes[i] == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                    Some(2)
                } else {
                    None
                }
            }),
            Style::Plain => plain_len(rest, value),
            Style::Block => 0,
        };
        (style, start.byte + len)
    }
}

/// Length of a quoted scalar starting at `rest[0]` (the opening quote), closing quote included.
fn quoted_len(rest: &str, quote: char, escape: impl Fn(&[u8], usize) -> Option<usize>) -> usize {
    let bytes = rest.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        if let Some(skip) = escape(bytes, i) {
            i += skip;
            continue;
        }
        if bytes[i] == quote as u8 {
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// Length of a plain scalar. A single-line plain scalar is its value verbatim; a multi-line one
/// is folded by YAML, so walk its lines (without trailing comments) until every word of the value
/// has been seen.
fn plain_len(rest: &str, value: &str) -> usize {
    if rest.starts_with(value) {
        return value.len();
    }
    let wanted: Vec<&str> = value.split_whitespace().collect();
    let mut seen = 0;
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        let content = strip_comment(line.trim_end_matches(['\r', '\n']));
        let lead = content.len() - content.trim_start().len();
        let words: Vec<&str> = content.split_whitespace().collect();
        seen += words.len();
        if seen >= wanted.len() {
            return offset + lead + content.trim().len();
        }
        offset += line.len();
    }
    rest.trim_end().len()
}

/// A line without its ` # comment`.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for i in 0..bytes.len() {
        if bytes[i] == b'#' && (i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
            return &line[..i];
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_text<'a>(text: &'a str, node: &Node) -> &'a str {
        match node {
            Node::Scalar { start, end, .. } => &text[start.byte..*end],
            _ => panic!("not a scalar"),
        }
    }

    #[test]
    fn quoted_scalar_ends_at_its_closing_quote_not_at_the_comment() {
        let text = "- \"--b=c\"   # hi\n- 'it''s'  \n- \"a\\\"b\"\n";
        let root = parse_document(text).unwrap();
        let Node::Seq { items, .. } = &root else {
            panic!()
        };
        assert_eq!(scalar_text(text, &items[0]), "\"--b=c\"");
        assert_eq!(scalar_text(text, &items[1]), "'it''s'");
        assert_eq!(scalar_text(text, &items[2]), "\"a\\\"b\"");
    }

    #[test]
    fn multi_line_plain_scalar_spans_its_lines() {
        let text = "- --b=c\r\n  d  # c\r\n- e\r\n";
        let root = parse_document(text).unwrap();
        let Node::Seq { items, .. } = &root else {
            panic!()
        };
        assert_eq!(scalar_text(text, &items[0]), "--b=c\r\n  d");
        assert_eq!(scalar_text(text, &items[1]), "e");
    }

    #[test]
    fn positions_count_bytes_after_non_ascii_text() {
        let text = "# ünïcödé\na: [x, \"--y\"]\n";
        let root = parse_document(text).unwrap();
        let Node::Seq { items, flow, .. } = root.get("a").unwrap() else {
            panic!()
        };
        assert!(flow);
        assert_eq!(scalar_text(text, &items[1]), "\"--y\"");
        assert_eq!(items[1].start().line, 2);
        assert_eq!(items[1].start().col, 8);
    }
}
