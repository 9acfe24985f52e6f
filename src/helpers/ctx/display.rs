//! Names and state formatting: full names, the `Debug` chain and the tree dump.
//!
//! Names are stored as segments and formatted here, on demand.

use std::fmt::Write;

use super::super::error::Failure;
use super::node::Node;

/// Appends this node's segment (`[prefix]-->name` or `name`) to `out`.
fn push_segment(node: &Node, out: &mut String) {
    if let Some(prefix) = node.extras.as_ref().and_then(|e| e.prefix.as_ref()) {
        if node.parent.is_some() {
            let _ = write!(out, "[{prefix}]-->");
        }
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

/// `CTX[a-->b](CANCELLED(FUT{a})|PENDING(FUT{a-->b}))`.
pub(super) fn chain(node: &Node) -> String {
    let mut name = String::new();
    let mut parts = Vec::new();
    for (i, n) in chain_of(node).into_iter().enumerate() {
        if i > 0 {
            name.push_str("-->");
        }
        push_segment(n, &mut name);
        parts.push(format!("{}(FUT{{{}}})", own_state(n), name));
    }
    format!("CTX[{}]({})", name, parts.join("|"))
}

/// A state as the tree dump shows it, including how a done node got done.
fn tree_state(node: &Node) -> String {
    match node.own() {
        Some(Failure::Cancelled) => "cancelled".to_owned(),
        Some(Failure::Error(e)) => format!("exception {}: {}", e.type_name(), e),
        None if node.done() => "done (through an ancestor)".to_owned(),
        None => "pending".to_owned(),
    }
}

/// One line per live context under `node` (itself included), indented by depth.
pub(super) fn tree(node: &std::sync::Arc<Node>) -> String {
    let mut out = String::new();
    let mut stack = vec![(node.clone(), 0usize)];
    while let Some((n, depth)) = stack.pop() {
        let _ = writeln!(
            out,
            "{:indent$}{} [{}]",
            "",
            full_name(&n),
            tree_state(&n),
            indent = depth * 2
        );
        let mut children = n.live_children();
        children.reverse();
        stack.extend(children.into_iter().map(|c| (c, depth + 1)));
    }
    out
}
