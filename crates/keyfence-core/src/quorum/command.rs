//! Commands that need a quorum and their canonical form: the exact bytes an
//! operator signs, so a signature over one command never authorizes another.

use std::collections::BTreeMap;

use super::QuorumError;

/// A kind of command; each has its own rule (M of N).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommandKind {
    /// Approve a node's join request.
    ApproveNode,
    /// Change a node's attributes.
    ChangeAttributes,
    /// Remove a node.
    RemoveNode,
    /// Rotate the CP-ABE master key.
    RotateAbeMaster,
    /// Rotate the domain key now.
    RotateDomainKey,
    /// Destroy a key before its waiting period ends.
    DestroyKeyEarly,
    /// Change a quorum rule.
    ChangeQuorum,
    /// Register an operator.
    AddOperator,
    /// Remove an operator.
    RemoveOperator,
    /// Export the audit signing key.
    ExportAuditKey,
}

impl CommandKind {
    /// Every kind, in order.
    pub const ALL: [CommandKind; 10] = [
        CommandKind::ApproveNode,
        CommandKind::ChangeAttributes,
        CommandKind::RemoveNode,
        CommandKind::RotateAbeMaster,
        CommandKind::RotateDomainKey,
        CommandKind::DestroyKeyEarly,
        CommandKind::ChangeQuorum,
        CommandKind::AddOperator,
        CommandKind::RemoveOperator,
        CommandKind::ExportAuditKey,
    ];

    /// The name used on the command line and in the canonical form.
    pub fn name(self) -> &'static str {
        match self {
            CommandKind::ApproveNode => "approve-node",
            CommandKind::ChangeAttributes => "change-attributes",
            CommandKind::RemoveNode => "remove-node",
            CommandKind::RotateAbeMaster => "rotate-abe-master",
            CommandKind::RotateDomainKey => "rotate-domain-key",
            CommandKind::DestroyKeyEarly => "destroy-key-early",
            CommandKind::ChangeQuorum => "change-quorum",
            CommandKind::AddOperator => "add-operator",
            CommandKind::RemoveOperator => "remove-operator",
            CommandKind::ExportAuditKey => "export-audit-key",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A command and its arguments (`name = value`, sorted by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// What it does.
    pub kind: CommandKind,
    /// Its arguments, e.g. `node = "fra"`.
    pub args: BTreeMap<String, String>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn valid_value(s: &str) -> bool {
    s.len() <= 4096 && !s.chars().any(char::is_control)
}

impl Command {
    /// A command with checked arguments: names `[a-z0-9_-]{1,64}`, values
    /// without control characters (so the canonical form has one reading).
    pub fn new(kind: CommandKind, args: BTreeMap<String, String>) -> Result<Self, QuorumError> {
        for (k, v) in &args {
            if !valid_name(k) {
                return Err(QuorumError::Malformed {
                    what: "command",
                    reason: "argument names are 1 to 64 of a-z, 0-9, '-' and '_'",
                });
            }
            if !valid_value(v) {
                return Err(QuorumError::Malformed {
                    what: "command",
                    reason: "argument values hold no control characters",
                });
            }
        }
        Ok(Self { kind, args })
    }

    /// The canonical text: the kind, then one `name=value` line per argument
    /// in name order, each line ended by `\n`.
    pub fn canonical(&self) -> String {
        let mut out = format!("{}\n", self.kind.name());
        for (k, v) in &self.args {
            out.push_str(k);
            out.push('=');
            out.push_str(v);
            out.push('\n');
        }
        out
    }

    /// Parses [`Self::canonical`] text, and only that.
    pub fn parse(text: &str) -> Result<Self, QuorumError> {
        let bad = |reason| QuorumError::Malformed {
            what: "command",
            reason,
        };
        let body = text
            .strip_suffix('\n')
            .ok_or(bad("not ended by a newline"))?;
        let mut lines = body.split('\n');
        let kind = CommandKind::from_name(lines.next().unwrap_or_default())
            .ok_or(bad("unknown command"))?;
        let mut args = BTreeMap::new();
        for line in lines {
            let (k, v) = line.split_once('=').ok_or(bad("an argument without '='"))?;
            if args.insert(k.to_owned(), v.to_owned()).is_some() {
                return Err(bad("an argument twice"));
            }
        }
        let command = Self::new(kind, args)?;
        if command.canonical() != text {
            return Err(bad("arguments not in canonical order"));
        }
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn canonical_text_round_trips_and_only_it_parses() {
        let c = Command::new(
            CommandKind::ApproveNode,
            BTreeMap::from([
                ("node".into(), "fra".into()),
                ("attributes".into(), "country=DE".into()),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.canonical(),
            "approve-node\nattributes=country=DE\nnode=fra\n"
        );
        assert_eq!(Command::parse(&c.canonical()).unwrap(), c);
        for bad in [
            "approve-node\nnode=fra\nattributes=country=DE\n",
            "approve-node\nnode=fra",
            "approve-node\nnode=fra\nnode=par\n",
            "launch-missiles\n",
            "approve-node\nNode=fra\n",
        ] {
            assert!(Command::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Command::new(
            CommandKind::RemoveNode,
            BTreeMap::from([("node".into(), "fra\nnode=par".into())])
        )
        .is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepts_only_canonical_text(text in "[a-z=\\-\n]{0,60}") {
            if let Ok(c) = Command::parse(&text) {
                prop_assert_eq!(c.canonical(), text);
            }
        }
    }
}
