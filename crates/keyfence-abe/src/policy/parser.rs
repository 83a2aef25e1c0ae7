//! Tokenizer and recursive-descent parser for policy strings.

use super::{Literal, Node, Policy};
use crate::attributes::{BK_LABEL, MAX_TEXT_LEN};
use crate::error::{Error, Result};
use crate::text::{tokenize, Kind, Token};

/// Deepest nesting of parentheses and `not` the parser follows.
const MAX_NESTING: usize = 64;

fn syntax(position: usize, message: impl Into<String>) -> Error {
    Error::PolicySyntax {
        position,
        message: message.into(),
    }
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    nesting: usize,
    leaves: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        // The token list always ends with `End`, which is never consumed.
        &self.tokens[self.next.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.kind != Kind::End {
            self.next += 1;
        }
        t
    }

    fn enter(&mut self, pos: usize) -> Result<()> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(syntax(
                pos,
                format!("nesting deeper than {MAX_NESTING} levels"),
            ));
        }
        Ok(())
    }

    /// `or := and ("or" and)*`; under negation the connectives swap (De Morgan).
    fn or(&mut self, negated: bool) -> Result<Node> {
        let mut node = self.and(negated)?;
        while self.peek().kind == Kind::Or {
            self.bump();
            let right = self.and(negated)?;
            node = if negated {
                Node::And(Box::new(node), Box::new(right))
            } else {
                Node::Or(Box::new(node), Box::new(right))
            };
        }
        Ok(node)
    }

    fn and(&mut self, negated: bool) -> Result<Node> {
        let mut node = self.not(negated)?;
        while self.peek().kind == Kind::And {
            self.bump();
            let right = self.not(negated)?;
            node = if negated {
                Node::Or(Box::new(node), Box::new(right))
            } else {
                Node::And(Box::new(node), Box::new(right))
            };
        }
        Ok(node)
    }

    fn not(&mut self, negated: bool) -> Result<Node> {
        let mut negated = negated;
        let mut count = 0;
        while self.peek().kind == Kind::Not {
            let t = self.bump();
            count += 1;
            if count > MAX_NESTING {
                return Err(syntax(t.pos, "too many consecutive 'not'"));
            }
            negated = !negated;
        }
        self.atom(negated)
    }

    fn atom(&mut self, negated: bool) -> Result<Node> {
        let t = self.bump();
        match t.kind {
            Kind::LParen => {
                self.enter(t.pos)?;
                let node = self.or(negated)?;
                self.nesting -= 1;
                let close = self.bump();
                if close.kind != Kind::RParen {
                    return Err(syntax(close.pos, "expected ')'"));
                }
                Ok(node)
            }
            Kind::Text(label) => {
                let colon = self.bump();
                if colon.kind != Kind::Colon {
                    return Err(syntax(colon.pos, format!("expected ':' after {label:?}")));
                }
                let value = self.bump();
                let value_text = match value.kind {
                    Kind::Text(v) => v,
                    Kind::And | Kind::Or | Kind::Not => {
                        return Err(syntax(
                            value.pos,
                            "a value that is a reserved word must be quoted",
                        ))
                    }
                    _ => return Err(syntax(value.pos, "expected an attribute value after ':'")),
                };
                if label.len() > MAX_TEXT_LEN {
                    return Err(syntax(t.pos, "attribute name too long"));
                }
                if value_text.len() > MAX_TEXT_LEN {
                    return Err(syntax(value.pos, "attribute value too long"));
                }
                self.leaves += 1;
                if self.leaves > super::MAX_LEAVES {
                    return Err(syntax(t.pos, "too many literals"));
                }
                if label == BK_LABEL {
                    return Err(syntax(t.pos, "reserved attribute name"));
                }
                Ok(Node::Leaf(Literal {
                    label,
                    value: value_text,
                    positive: !negated,
                }))
            }
            Kind::End => Err(syntax(t.pos, "unexpected end of policy")),
            Kind::And | Kind::Or => Err(syntax(
                t.pos,
                "a name that is a reserved word must be quoted",
            )),
            _ => Err(syntax(t.pos, "expected '(', 'not' or an attribute name")),
        }
    }
}

/// Parses `input` into a policy in negation normal form.
pub(super) fn parse(input: &str) -> Result<Policy> {
    let tokens = tokenize(input).map_err(|e| syntax(e.pos, e.message))?;
    let mut parser = Parser {
        tokens,
        next: 0,
        nesting: 0,
        leaves: 0,
    };
    let root = parser.or(false)?;
    let t = parser.peek().clone();
    if t.kind != Kind::End {
        return Err(syntax(t.pos, "expected 'and', 'or' or end of policy"));
    }
    Policy::from_root(root).map_err(|e| match e {
        Error::InvalidPolicy(msg) => syntax(0, msg),
        other => other,
    })
}
