//! The monotone formula the scheme actually encrypts under: a policy in negation
//! normal form whose literals ("wires") carry their hashed values.

use blstrs::Scalar;

use crate::attributes::BK_LABEL;
use crate::error::{Error, Result};
use crate::hashing::hash_value;
use crate::policy::{Literal, Node, Policy, MAX_LEAVES};

/// An input of the formula: a literal with its value hashed to a scalar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Wire {
    pub(crate) label: String,
    /// The value as written in the policy (empty for the Boneh–Katz wire).
    pub(crate) raw: String,
    pub(crate) value: Scalar,
    pub(crate) positive: bool,
}

impl Wire {
    /// A wire for `label: raw`, hashing the value.
    pub(crate) fn new(label: &str, raw: &str, positive: bool) -> Self {
        Wire {
            label: label.to_owned(),
            raw: raw.to_owned(),
            value: hash_value(raw),
            positive,
        }
    }
}

/// A gate tree whose leaves index into [`Formula::wires`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    Leaf(usize),
    And(Box<Gate>, Box<Gate>),
    Or(Box<Gate>, Box<Gate>),
}

/// Wires plus the and/or tree over them; every wire is used by exactly one leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Formula {
    pub(crate) wires: Vec<Wire>,
    pub(crate) root: Gate,
}

fn gate_from_node(node: &Node, wires: &mut Vec<Wire>) -> Gate {
    match node {
        Node::Leaf(l) => {
            wires.push(Wire::new(&l.label, &l.value, l.positive));
            Gate::Leaf(wires.len() - 1)
        }
        Node::And(a, b) => Gate::And(
            Box::new(gate_from_node(a, wires)),
            Box::new(gate_from_node(b, wires)),
        ),
        Node::Or(a, b) => Gate::Or(
            Box::new(gate_from_node(a, wires)),
            Box::new(gate_from_node(b, wires)),
        ),
    }
}

impl Formula {
    /// The formula of a policy; wires are numbered in left-to-right leaf order.
    pub(crate) fn from_policy(policy: &Policy) -> Self {
        let mut wires = Vec::new();
        let root = gate_from_node(&policy.root, &mut wires);
        Formula { wires, root }
    }

    /// Checks that every wire is used by exactly one leaf and that sizes are in bounds.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.wires.is_empty() || self.wires.len() > MAX_LEAVES + 1 {
            return Err(Error::Malformed("formula has no wires or too many"));
        }
        let mut seen = vec![false; self.wires.len()];
        let mut leaves = 0usize;
        fn walk(g: &Gate, seen: &mut [bool], leaves: &mut usize) -> Result<()> {
            match g {
                Gate::Leaf(i) => {
                    *leaves += 1;
                    match seen.get_mut(*i) {
                        Some(s) if !*s => {
                            *s = true;
                            Ok(())
                        }
                        _ => Err(Error::Malformed("formula wire missing or used twice")),
                    }
                }
                Gate::And(a, b) | Gate::Or(a, b) => {
                    walk(a, seen, leaves)?;
                    walk(b, seen, leaves)
                }
            }
        }
        walk(&self.root, &mut seen, &mut leaves)?;
        if leaves != self.wires.len() {
            return Err(Error::Malformed("formula leaves and wires disagree"));
        }
        Ok(())
    }

    /// The policy this formula encodes (values as written).
    pub(crate) fn to_policy(&self) -> Result<Policy> {
        fn node(g: &Gate, wires: &[Wire]) -> Result<Node> {
            Ok(match g {
                Gate::Leaf(i) => {
                    let w = wires.get(*i).ok_or(Error::Malformed("wire index"))?;
                    Node::Leaf(Literal {
                        label: w.label.clone(),
                        value: w.raw.clone(),
                        positive: w.positive,
                    })
                }
                Gate::And(a, b) => Node::And(Box::new(node(a, wires)?), Box::new(node(b, wires)?)),
                Gate::Or(a, b) => Node::Or(Box::new(node(a, wires)?), Box::new(node(b, wires)?)),
            })
        }
        Policy::from_root(node(&self.root, &self.wires)?)
    }

    /// The Boneh–Katz augmented formula `bk: id AND self`, with the new wire last.
    pub(crate) fn with_identity(&self, id: Scalar) -> Formula {
        let mut wires = self.wires.clone();
        wires.push(Wire {
            label: BK_LABEL.to_owned(),
            raw: String::new(),
            value: id,
            positive: true,
        });
        let root = Gate::And(
            Box::new(Gate::Leaf(wires.len() - 1)),
            Box::new(self.root.clone()),
        );
        Formula { wires, root }
    }

    /// For every wire, how many earlier wires share its label (the paper's `pi`, from 0).
    pub(crate) fn repetition_indices(&self) -> Vec<usize> {
        let mut counts: std::collections::HashMap<&str, usize> = Default::default();
        self.wires
            .iter()
            .map(|w| {
                let c = counts.entry(w.label.as_str()).or_insert(0);
                *c += 1;
                *c - 1
            })
            .collect()
    }

    /// Linear secret sharing over the tree, in any group: an OR passes its share to
    /// both inputs; an AND splits it with `split(share) = (t, share - t)`, where `t`
    /// must be fresh and uniform. Shares of any satisfying set of wires add up to
    /// `secret`. Returns one share per wire.
    pub(crate) fn share<T: Copy>(&self, secret: T, split: &mut impl FnMut(T) -> (T, T)) -> Vec<T> {
        fn walk<T: Copy>(
            g: &Gate,
            s: T,
            out: &mut [Option<T>],
            split: &mut impl FnMut(T) -> (T, T),
        ) {
            match g {
                Gate::Leaf(i) => out[*i] = Some(s),
                Gate::Or(a, b) => {
                    walk(a, s, out, split);
                    walk(b, s, out, split);
                }
                Gate::And(a, b) => {
                    let (left, right) = split(s);
                    walk(a, left, out, split);
                    walk(b, right, out, split);
                }
            }
        }
        let mut out = vec![None; self.wires.len()];
        walk(&self.root, secret, &mut out, split);
        // `validate` guarantees every wire is a leaf, so every slot was filled.
        out.into_iter().map(|s| s.unwrap_or(secret)).collect()
    }

    /// A smallest-first satisfying set of wires, given which wires the key matches.
    pub(crate) fn satisfying_set(&self, matched: &[bool]) -> Option<Vec<usize>> {
        fn walk(g: &Gate, matched: &[bool]) -> Option<Vec<usize>> {
            match g {
                Gate::Leaf(i) => matched.get(*i).copied().unwrap_or(false).then(|| vec![*i]),
                Gate::And(a, b) => {
                    let mut l = walk(a, matched)?;
                    l.extend(walk(b, matched)?);
                    Some(l)
                }
                Gate::Or(a, b) => match (walk(a, matched), walk(b, matched)) {
                    (Some(l), Some(r)) => Some(if r.len() < l.len() { r } else { l }),
                    (l, r) => l.or(r),
                },
            }
        }
        walk(&self.root, matched)
    }
}
