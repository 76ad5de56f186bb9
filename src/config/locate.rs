//! Finding where a value sits in the YAML text.
//!
//! serde_yaml reports positions only for errors it raises itself; once a [`super::Config`] is
//! built, every span is gone. Cross-reference checks therefore name the offending value by its
//! path (`routes[2].targets[1]`) and this module re-reads the text with yaml-rust2's event
//! parser, which does carry positions, to turn that path into a line and column.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One step of a path into the document: a mapping key or a sequence index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seg<'a> {
    /// A key of a mapping.
    Key(&'a str),
    /// A 0-based position in a sequence.
    Index(usize),
}

impl<'a> From<&'a str> for Seg<'a> {
    fn from(key: &'a str) -> Self {
        Seg::Key(key)
    }
}

impl From<usize> for Seg<'_> {
    fn from(index: usize) -> Self {
        Seg::Index(index)
    }
}

/// A position in the text, 1-based like every editor and compiler shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// Character offset, only used to order marks.
    index: usize,
}

impl Pos {
    fn from_marker(m: Marker) -> Self {
        // yaml-rust2 counts lines from 1 but columns from 0.
        Pos { line: m.line(), column: m.col() + 1, index: m.index() }
    }
}

#[derive(Debug)]
enum Kind {
    Scalar {
        value: String,
        /// `key:` with nothing after it; the parser marks such a value at the next token,
        /// which may be lines further down, so the key is the better place to point at.
        empty: bool,
    },
    Seq(Vec<usize>),
    Map(Vec<(usize, usize)>),
}

#[derive(Debug)]
struct Node {
    pos: Pos,
    kind: Kind,
}

/// The first YAML document of a text as a tree of positioned nodes.
///
/// Nodes live in an arena and aliases point at the anchored node instead of copying it, so an
/// alias-heavy document costs no more than its text.
#[derive(Debug, Default)]
pub(crate) struct Locator {
    nodes: Vec<Node>,
    root: Option<usize>,
}

impl Locator {
    /// Parses `text`. A text yaml-rust2 cannot parse yields whatever was built before the error;
    /// lookups then fall back as far as needed, and to nothing at all if there is no root.
    pub(crate) fn new(text: &str) -> Self {
        let mut b = Builder::default();
        // Errors are deliberately ignored: serde_yaml has already accepted this text, so a
        // failure here only means less precise positions, never a wrong configuration.
        let _ = Parser::new_from_str(text).load(&mut b, false);
        // After an error, collections still open hold what was read so far; closing them
        // hangs it all under the root.
        while let Some(open) = b.stack.pop() {
            b.attach(open.id);
        }
        Locator { nodes: b.nodes, root: b.root }
    }

    /// Where the node at `path` is written. If a step of the path is absent (a defaulted key,
    /// an index past the end), the deepest node that exists is returned instead, so an error
    /// about a defaulted value still points into the right section. `None` only when the text
    /// has no document at all.
    pub(crate) fn locate(&self, path: &[Seg]) -> Option<Pos> {
        let mut node = self.root?;
        let mut pos = self.nodes.get(node)?.pos;
        for seg in path {
            let Some((key, value)) = self.child(node, *seg) else {
                break;
            };
            node = value;
            pos = match (&self.nodes[value].kind, key) {
                (Kind::Scalar { empty: true, .. }, Some(key)) => self.nodes[key].pos,
                _ => self.nodes[value].pos,
            };
        }
        Some(pos)
    }

    /// The (key node, value node) of one step below `node`.
    fn child(&self, node: usize, seg: Seg) -> Option<(Option<usize>, usize)> {
        match (&self.nodes.get(node)?.kind, seg) {
            (Kind::Seq(items), Seg::Index(i)) => items.get(i).map(|&v| (None, v)),
            (Kind::Map(entries), Seg::Key(name)) => entries
                .iter()
                .find(|(k, _)| {
                    matches!(&self.nodes[*k].kind, Kind::Scalar { value, .. } if value == name)
                })
                .map(|&(k, v)| (Some(k), v)),
            _ => None,
        }
    }
}

/// A collection whose end event has not arrived yet.
#[derive(Debug)]
struct Open {
    id: usize,
    /// In a mapping: the key waiting for its value.
    pending_key: Option<usize>,
}

#[derive(Debug, Default)]
struct Builder {
    nodes: Vec<Node>,
    stack: Vec<Open>,
    anchors: HashMap<usize, usize>,
    root: Option<usize>,
}

impl Builder {
    fn push(&mut self, pos: Pos, kind: Kind, anchor: usize) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node { pos, kind });
        // yaml-rust2 numbers anchors from 1; 0 means none.
        if anchor != 0 {
            self.anchors.insert(anchor, id);
        }
        id
    }

    /// Hangs a finished node under the innermost open collection.
    fn attach(&mut self, id: usize) {
        let Some(top) = self.stack.last_mut() else {
            self.root.get_or_insert(id);
            return;
        };
        let child_pos = self.nodes[id].pos;
        let parent = &mut self.nodes[top.id];
        match &mut parent.kind {
            Kind::Seq(items) => items.push(id),
            Kind::Map(entries) => match top.pending_key.take() {
                Some(key) => entries.push((key, id)),
                None => {
                    // A block mapping's start event is marked after its first key, not at it;
                    // the first key is where a reader sees the mapping begin.
                    if entries.is_empty() && child_pos.index < parent.pos.index {
                        parent.pos = child_pos;
                    }
                    top.pending_key = Some(id);
                }
            },
            Kind::Scalar { .. } => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from_marker(mark);
        match ev {
            Event::Scalar(value, style, anchor, _) => {
                let empty = style == TScalarStyle::Plain && value.is_empty();
                let id = self.push(pos, Kind::Scalar { value, empty }, anchor);
                self.attach(id);
            }
            Event::Alias(anchor) => {
                let id = match self.anchors.get(&anchor) {
                    Some(&id) => id,
                    None => self.push(pos, Kind::Scalar { value: String::new(), empty: false }, 0),
                };
                self.attach(id);
            }
            Event::SequenceStart(anchor, _) => {
                let id = self.push(pos, Kind::Seq(Vec::new()), anchor);
                self.stack.push(Open { id, pending_key: None });
            }
            Event::MappingStart(anchor, _) => {
                let id = self.push(pos, Kind::Map(Vec::new()), anchor);
                self.stack.push(Open { id, pending_key: None });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(open) = self.stack.pop() {
                    self.attach(open.id);
                }
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
zones:
  - name: lan
    udp: 127.0.0.1:5060
  - name: trunk
    tcp: 127.0.0.1:5080
routes:
  - name: a
    targets: [itsp, \"pbx\"]
  - name: b
    targets:
      - x
      - &t y
    from: *t
    empty:
    flow: {k: v}
";

    fn at(path: &[Seg]) -> (usize, usize) {
        let p = Locator::new(DOC).locate(path).expect("document has a root");
        (p.line, p.column)
    }

    #[test]
    fn positions_are_one_based() {
        assert_eq!(at(&["zones".into()]), (2, 3));
        assert_eq!(at(&["zones".into(), 0.into(), "name".into()]), (2, 11));
        assert_eq!(at(&["zones".into(), 1.into(), "tcp".into()]), (5, 10));
    }

    #[test]
    fn block_mapping_is_located_at_its_first_key() {
        assert_eq!(at(&[]), (1, 1));
        assert_eq!(at(&["zones".into(), 1.into()]), (4, 5));
    }

    #[test]
    fn flow_and_quoted_values() {
        assert_eq!(at(&["routes".into(), 0.into(), "targets".into()]), (8, 14));
        assert_eq!(at(&["routes".into(), 0.into(), "targets".into(), 1.into()]), (8, 21));
        assert_eq!(at(&["routes".into(), 1.into(), "flow".into()]), (15, 11));
        assert_eq!(at(&["routes".into(), 1.into(), "flow".into(), "k".into()]), (15, 15));
    }

    #[test]
    fn block_sequence_items() {
        assert_eq!(at(&["routes".into(), 1.into(), "targets".into(), 1.into()]), (12, 12));
    }

    #[test]
    fn alias_resolves_to_anchored_value() {
        assert_eq!(at(&["routes".into(), 1.into(), "from".into()]), (12, 12));
    }

    #[test]
    fn empty_value_points_at_its_key() {
        assert_eq!(at(&["routes".into(), 1.into(), "empty".into()]), (14, 5));
    }

    #[test]
    fn absent_steps_fall_back_to_the_deepest_existing_node() {
        assert_eq!(at(&["zones".into(), 0.into(), "tcp".into()]), (2, 5));
        assert_eq!(at(&["zones".into(), 7.into(), "name".into()]), (2, 3));
        assert_eq!(at(&["timers".into(), "t1".into()]), (1, 1));
        // A key step on a sequence does not match.
        assert_eq!(at(&["zones".into(), "name".into()]), (2, 3));
    }

    #[test]
    fn empty_text_has_no_position() {
        assert_eq!(Locator::new("").locate(&["zones".into()]), None);
    }

    #[test]
    fn broken_text_still_locates_what_came_before_the_error() {
        let loc = Locator::new("zones:\n  - name: lan\n  bad: [\n");
        let p = loc.locate(&["zones".into(), 0.into(), "name".into()]).expect("partial tree");
        assert_eq!((p.line, p.column), (2, 11));
    }
}
