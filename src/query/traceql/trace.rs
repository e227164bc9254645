//! One trace held in memory for evaluation: `spans` rows of one trace id
//! (from [`super::fetch`]) → spans with their attributes, events and links,
//! plus the structure TraceQL needs: each span's parent and children, the
//! root, nested-set numbers, and the trace's start, end and duration.

use std::collections::HashMap;

/// One span, decoded from a `spans` row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Span {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: String,
    pub service: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub status_code: String,
    pub status_message: Option<String>,
    pub attributes: Vec<(String, String)>,
    pub resource_attributes: Vec<(String, String)>,
    pub scope_name: Option<String>,
    pub scope_version: Option<String>,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    pub time_ns: i64,
    pub name: String,
    pub attributes: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Link {
    pub trace_id: String,
    pub span_id: String,
    pub attributes: Vec<(String, String)>,
}

/// Looks `key` up in a text attribute list.
pub fn lookup<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl Span {
    /// `resource.service.name` falls back to the `service` column.
    pub fn resource_attribute(&self, key: &str) -> Option<&str> {
        lookup(&self.resource_attributes, key).or_else(|| {
            (key == "service.name" && !self.service.is_empty()).then_some(self.service.as_str())
        })
    }
}

/// A trace with its structure.
#[derive(Debug, Clone)]
pub struct Trace {
    pub trace_id: String,
    pub spans: Vec<Span>,
    /// Index of each span's parent within `spans`.
    pub parent: Vec<Option<usize>>,
    pub child_count: Vec<u32>,
    /// (left, right, parent's left) of each span; 0 where unknown.
    pub nested_set: Vec<(i64, i64, i64)>,
    /// The span without a parent id, if it arrived.
    pub root: Option<usize>,
    pub start_ns: i64,
    pub end_ns: i64,
}

impl Trace {
    pub fn new(trace_id: String, mut spans: Vec<Span>) -> Trace {
        spans.sort_by(|a, b| {
            a.start_ns
                .cmp(&b.start_ns)
                .then_with(|| a.span_id.cmp(&b.span_id))
        });
        spans.dedup_by(|a, b| a.span_id == b.span_id);
        let index: HashMap<&str, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id.as_str(), i))
            .collect();
        let parent: Vec<Option<usize>> = spans
            .iter()
            .map(|s| {
                s.parent_span_id
                    .as_deref()
                    .and_then(|p| index.get(p).copied())
            })
            .collect();
        let mut child_count = vec![0u32; spans.len()];
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
        for (i, p) in parent.iter().enumerate() {
            if let Some(p) = p {
                child_count[*p] += 1;
                children[*p].push(i);
            }
        }
        let root = spans.iter().position(|s| s.parent_span_id.is_none());
        // Nested sets over every subtree whose top has no known parent.
        let mut nested_set = vec![(0i64, 0i64, 0i64); spans.len()];
        let mut counter = 0i64;
        for top in (0..spans.len()).filter(|i| parent[*i].is_none()) {
            let mut stack = vec![(top, false)];
            while let Some((node, done)) = stack.pop() {
                if done {
                    counter += 1;
                    nested_set[node].1 = counter;
                    continue;
                }
                counter += 1;
                let parent_left = parent[node].map_or(-1, |p| nested_set[p].0);
                nested_set[node] = (counter, 0, parent_left);
                stack.push((node, true));
                for child in children[node].iter().rev() {
                    stack.push((*child, false));
                }
            }
        }
        let start_ns = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
        let end_ns = spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
        Trace {
            trace_id,
            spans,
            parent,
            child_count,
            nested_set,
            root,
            start_ns,
            end_ns,
        }
    }

    pub fn duration_ns(&self) -> i64 {
        self.end_ns - self.start_ns
    }

    /// Whether `ancestor` is a proper ancestor of `span`.
    pub fn is_ancestor(&self, ancestor: usize, span: usize) -> bool {
        let mut cur = self.parent[span];
        let mut steps = 0;
        while let Some(p) = cur {
            if p == ancestor {
                return true;
            }
            steps += 1;
            if steps > self.spans.len() {
                return false; // a cycle in bad data
            }
            cur = self.parent[p];
        }
        false
    }

    pub fn root_name(&self) -> Option<&str> {
        self.root.map(|r| self.spans[r].name.as_str())
    }

    pub fn root_service(&self) -> Option<&str> {
        self.root.map(|r| self.spans[r].service.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn span(id: &str, parent: Option<&str>, start: i64) -> Span {
        Span {
            span_id: id.into(),
            parent_span_id: parent.map(Into::into),
            name: id.into(),
            start_ns: start,
            end_ns: start + 10,
            ..Default::default()
        }
    }

    #[test]
    fn structure_from_parent_ids() {
        let t = Trace::new(
            "t".into(),
            vec![
                span("c", Some("b"), 3),
                span("a", None, 1),
                span("b", Some("a"), 2),
                span("d", Some("a"), 4),
            ],
        );
        let idx = |id: &str| t.spans.iter().position(|s| s.span_id == id).unwrap();
        assert_eq!(t.root, Some(idx("a")));
        assert_eq!(t.parent[idx("c")], Some(idx("b")));
        assert!(t.is_ancestor(idx("a"), idx("c")));
        assert!(!t.is_ancestor(idx("d"), idx("c")));
        assert_eq!(t.child_count[idx("a")], 2);
        let (l, r, _) = t.nested_set[idx("a")];
        let (cl, cr, cp) = t.nested_set[idx("c")];
        assert!(l < cl && cr < r);
        assert_eq!(cp, t.nested_set[idx("b")].0);
        assert_eq!(t.duration_ns(), 13);
    }
}
