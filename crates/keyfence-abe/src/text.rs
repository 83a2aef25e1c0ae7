//! The lexical layer shared by policy and attribute-set text: tokens, bare words and
//! quoted strings.
//!
//! A name or value is written bare when it is a non-empty run of letters, digits
//! (Unicode alphanumerics), `_`, `-` and `.` and not one of the words `and`, `or`,
//! `not`; otherwise it is written in double quotes, where `\\`, `\"`, `\n`, `\r`, `\t`
//! and `\u{…}` (1 to 6 hex digits) are escapes and every other character stands for
//! itself. [`write_text`] quotes exactly when needed and escapes `\`, `"` and control
//! characters, so printed text always lexes back to the same string.

use std::fmt;

/// True for characters a name or value may contain without quotes.
pub(crate) fn is_bare_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// True for the words the policy language reserves.
pub(crate) fn is_keyword(s: &str) -> bool {
    matches!(s, "and" | "or" | "not")
}

/// True when `s` cannot be written bare.
pub(crate) fn needs_quotes(s: &str) -> bool {
    s.is_empty() || is_keyword(s) || !s.chars().all(is_bare_char)
}

/// Writes `s` as a name or value: bare when possible, otherwise quoted and escaped.
pub(crate) fn write_text(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    if !needs_quotes(s) {
        return f.write_str(s);
    }
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    LParen,
    RParen,
    LBrace,
    RBrace,
    Colon,
    Comma,
    And,
    Or,
    Not,
    /// A name or value, bare or quoted (quotes removed, escapes resolved).
    Text(String),
    End,
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) pos: usize,
}

/// A lexical error: byte offset and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    pub(crate) pos: usize,
    pub(crate) message: String,
}

fn lex_error(pos: usize, message: impl Into<String>) -> LexError {
    LexError {
        pos,
        message: message.into(),
    }
}

/// Splits `input` into tokens, ending with [`Kind::End`] at `input.len()`.
pub(crate) fn tokenize(input: &str) -> Result<Vec<Token>, LexError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(pos, c)) = chars.peek() {
        let kind = match c {
            c if c.is_whitespace() => {
                chars.next();
                continue;
            }
            '(' => Kind::LParen,
            ')' => Kind::RParen,
            '{' => Kind::LBrace,
            '}' => Kind::RBrace,
            ':' => Kind::Colon,
            ',' => Kind::Comma,
            '"' => {
                chars.next();
                let text = quoted(input, pos, &mut chars)?;
                tokens.push(Token {
                    kind: Kind::Text(text),
                    pos,
                });
                continue;
            }
            c if is_bare_char(c) => {
                let mut end = pos;
                while let Some(&(i, c)) = chars.peek() {
                    if !is_bare_char(c) {
                        break;
                    }
                    end = i + c.len_utf8();
                    chars.next();
                }
                let word = &input[pos..end];
                let kind = match word {
                    "and" => Kind::And,
                    "or" => Kind::Or,
                    "not" => Kind::Not,
                    _ => Kind::Text(word.to_owned()),
                };
                tokens.push(Token { kind, pos });
                continue;
            }
            other => return Err(lex_error(pos, format!("unexpected character {other:?}"))),
        };
        chars.next();
        tokens.push(Token { kind, pos });
    }
    tokens.push(Token {
        kind: Kind::End,
        pos: input.len(),
    });
    Ok(tokens)
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// The body of a quoted string whose opening quote at `open` was consumed.
fn quoted(input: &str, open: usize, chars: &mut Chars<'_>) -> Result<String, LexError> {
    let mut out = String::new();
    loop {
        let Some((pos, c)) = chars.next() else {
            return Err(lex_error(open, "unterminated quoted string"));
        };
        match c {
            '"' => return Ok(out),
            '\\' => out.push(escape(input, pos, chars)?),
            c => out.push(c),
        }
    }
}

/// The character of the escape whose backslash is at `pos`.
fn escape(input: &str, pos: usize, chars: &mut Chars<'_>) -> Result<char, LexError> {
    let bad = || lex_error(pos, "invalid escape in quoted string");
    match chars.next().ok_or_else(bad)?.1 {
        '\\' => Ok('\\'),
        '"' => Ok('"'),
        'n' => Ok('\n'),
        'r' => Ok('\r'),
        't' => Ok('\t'),
        'u' => {
            if chars.next().map(|(_, c)| c) != Some('{') {
                return Err(bad());
            }
            let start = chars.peek().map_or(input.len(), |&(i, _)| i);
            let mut end = start;
            while let Some(&(i, c)) = chars.peek() {
                if c == '}' {
                    break;
                }
                if !c.is_ascii_hexdigit() || i - start >= 6 {
                    return Err(bad());
                }
                end = i + 1;
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('}') || end == start {
                return Err(bad());
            }
            u32::from_str_radix(&input[start..end], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Shown<'a>(&'a str);
    impl fmt::Display for Shown<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_text(f, self.0)
        }
    }

    fn lex_one(s: &str) -> Kind {
        let tokens = tokenize(s).unwrap();
        assert_eq!(tokens.len(), 2, "{s:?}: {tokens:?}");
        tokens[0].kind.clone()
    }

    #[test]
    fn quotes_exactly_when_needed() {
        for (text, shown) in [
            ("EU", "EU"),
            ("top-secret", "top-secret"),
            ("v1.2_x", "v1.2_x"),
            ("Zürich", "Zürich"),
            ("data center", "\"data center\""),
            ("and", "\"and\""),
            ("or", "\"or\""),
            ("not", "\"not\""),
            ("andor", "andor"),
            ("", "\"\""),
            ("a:b", "\"a:b\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
            ("back\\slash", "\"back\\\\slash\""),
            ("line\nbreak\ttab\r", "\"line\\nbreak\\ttab\\r\""),
            ("bell\u{7}", "\"bell\\u{7}\""),
        ] {
            assert_eq!(Shown(text).to_string(), shown, "{text:?}");
            assert_eq!(lex_one(shown), Kind::Text(text.to_owned()), "{shown}");
        }
    }

    #[test]
    fn escapes_and_their_errors() {
        assert_eq!(lex_one(r#""\u{1F600}\u{41}""#), Kind::Text("😀A".into()));
        assert_eq!(
            lex_one("\"raw\nnewline\""),
            Kind::Text("raw\nnewline".into())
        );
        for (input, pos) in [
            (r#"a: "open"#, 3),
            (r#""\x""#, 1),
            (r#""\u{}""#, 1),
            (r#""\u{1234567}""#, 1),
            (r#""\u{D800}""#, 1),
            (r#""\u{110000}""#, 1),
            (r#""\u12""#, 1),
            (r#""\u{12""#, 1),
            ("\"\\", 1),
        ] {
            let err = tokenize(input).unwrap_err();
            assert_eq!(err.pos, pos, "{input:?}: {err:?}");
        }
    }
}
