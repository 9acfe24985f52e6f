//! Names and state formatting: full names, the `Debug` chain and the tree dump.
//!
//! Names are stored as segments and formatted here, on demand.
//!
//! Output stays linear in the number of contexts at any depth (Robustness rules): a
//! name that has grown past [`LONG_NAME`] bytes is shown as `...-->` plus the context's
//! own segment, and the tree's indentation stops growing at [`MAX_INDENT`] levels (deeper
//! lines show their depth as a number). Every walk is a loop, never a recursion.

use std::fmt::Write;

use super::super::error::Failure;
use super::node::Node;

/// Past this many bytes a full name is shown by its last segment only.
pub(super) const LONG_NAME: usize = 120;
/// Indentation levels of the tree dump; deeper lines say `[depth N]` instead.
pub(super) const MAX_INDENT: usize = 16;

/// What is shown for a node whose full name is long: `...-->` and its own segment.
fn elided(node: &Node) -> String {
    let mut out = String::from("...-->");
    push_segment(node, &mut out);
    out
}

/// Appends this node's segment (`[prefix]-->name` or `name`) to `out`.
fn push_segment(node: &Node, out: &mut String) {
    if let Some(prefix) = node.extras.as_ref().and_then(|e| e.prefix.as_ref())
        && node.parent.is_some()
    {
        let _ = write!(out, "[{prefix}]-->");
    }
    out.push_str(&node.name);
}

/// The chain from the root down to `node`.
fn chain_of(node: &Node) -> Vec<&Node> {
    let mut chain = vec![node];
    let mut n = node;
    while let Some(p) = n.parent.as_deref() {
        chain.push(p);
        n = p;
    }
    chain.reverse();
    chain
}

/// `root-->child-->[prefix]-->grandchild`.
pub(super) fn full_name(node: &Node) -> String {
    let mut out = String::new();
    for (i, n) in chain_of(node).into_iter().enumerate() {
        if i > 0 {
            out.push_str("-->");
        }
        push_segment(n, &mut out);
    }
    out
}

/// A node's own state: `PENDING`, `CANCELLED` or `EXCEPTION`.
fn own_state(node: &Node) -> &'static str {
    match node.own() {
        None => "PENDING",
        Some(Failure::Cancelled) => "CANCELLED",
        Some(Failure::Error(_)) => "EXCEPTION",
    }
}

/// `CTX[a-->b](CANCELLED(FUT{a})|PENDING(FUT{a-->b}))`; once the name grows past
/// [`LONG_NAME`], each further part shows only its own segment.
pub(super) fn chain(node: &Node) -> String {
    let mut name = String::new();
    let mut parts = String::new();
    for (i, n) in chain_of(node).into_iter().enumerate() {
        if i > 0 {
            name.push_str("-->");
            parts.push('|');
        }
        push_segment(n, &mut name);
        parts.push_str(own_state(n));
        parts.push_str("(FUT{");
        if name.len() <= LONG_NAME {
            parts.push_str(&name);
        } else {
            parts.push_str(&elided(n));
        }
        parts.push_str("})");
    }
    format!("CTX[{name}]({parts})")
}

/// A state as the tree dump shows it, including how a done node got done.
fn tree_state(node: &Node) -> String {
    match node.own() {
        Some(Failure::Cancelled) => "cancelled".to_owned(),
        Some(Failure::Error(e)) => format!("exception {}: {}", e.type_name(), e),
        None if node.done() => "done (through an ancestor)".to_owned(),
        None if node.waiting() => "waiting".to_owned(),
        None => "pending".to_owned(),
    }
}

/// One line per context under `node` (itself included) that still exists, finished or
/// not, indented by depth (capped), each with its own state.
pub(super) fn tree(node: &std::sync::Arc<Node>) -> String {
    let mut out = String::new();
    let top = full_name(node);
    let top = (top.len() <= LONG_NAME).then_some(top);
    // (node, depth, its full name while that is short)
    let mut stack = vec![(node.clone(), 0usize, top)];
    while let Some((n, depth, full)) = stack.pop() {
        let shown = match &full {
            Some(f) => f.as_str().to_owned(),
            None => elided(&n),
        };
        if depth > MAX_INDENT {
            let _ = writeln!(
                out,
                "{:indent$}[depth {depth}] {shown} [{}]",
                "",
                tree_state(&n),
                indent = MAX_INDENT * 2
            );
        } else {
            let _ = writeln!(
                out,
                "{:indent$}{shown} [{}]",
                "",
                tree_state(&n),
                indent = depth * 2
            );
        }
        let mut children = n.live_children();
        children.reverse();
        for c in children {
            let full = full.as_ref().and_then(|f| {
                let mut name = String::with_capacity(f.len() + 3 + c.name.len());
                name.push_str(f);
                name.push_str("-->");
                push_segment(&c, &mut name);
                (name.len() <= LONG_NAME).then_some(name)
            });
            stack.push((c, depth + 1, full));
        }
    }
    out
}
