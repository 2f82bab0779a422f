//! Minimal text edits of the apiserver's argument list.
//!
//! Only the flag's own list item changes: its scalar is rewritten in place (same quoting), or its
//! line (block list) / its item and one separator (flow list) is cut, or one item is inserted
//! where kubeadm would have put it (kubeadm writes flags sorted by name). Every other byte stays.

use super::flags::{self, EXTEND_TOKEN_EXPIRATION};
use super::yaml::Style;
use super::{
    ArgItem, ArgList, ErrorKind, ExtendTokens, FlagState, ListKind, Manifest, ManifestError,
};

/// What the flag should be after the edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `--service-account-extend-token-expiration=<bool>`, exactly once.
    Set(bool),
    /// No occurrence at all: the apiserver's default applies (used by revert).
    Remove,
}

/// The result of an edit: the new text (equal to the old when nothing had to change) and a report.
#[derive(Debug, Clone)]
pub struct Edit {
    pub new_text: String,
    pub changed: bool,
    pub before: ExtendTokens,
    pub after: ExtendTokens,
    /// Things a person should know, e.g. duplicates that were folded into one.
    pub notes: Vec<String>,
}

struct Splice {
    start: usize,
    end: usize,
    with: String,
}

/// Computes the minimal edit that brings the flag to `target`, and proves it (see `verify`).
pub fn edit_extend_tokens(text: &str, target: Target) -> Result<Edit, ManifestError> {
    let manifest = Manifest::parse(text)?;
    let before = manifest.extend_tokens();
    let mut notes = Vec::new();
    let lines: Vec<String> = before
        .occurrences
        .iter()
        .map(|o| o.line.to_string())
        .collect();
    let already = match target {
        Target::Set(v) => before.state == FlagState::Explicit { value: v },
        Target::Remove => before.occurrences.is_empty(),
    };
    if already {
        if before.occurrences.len() > 1 {
            notes.push(format!(
                "the flag is written {} times (lines {}); the last one already says what was asked, so nothing changes",
                before.occurrences.len(),
                lines.join(", ")
            ));
        }
        return Ok(Edit {
            new_text: text.to_string(),
            changed: false,
            after: before.clone(),
            before,
            notes,
        });
    }

    let found = occurrence_items(&manifest);
    let mut splices = Vec::new();
    match target {
        Target::Set(value) => {
            let rendered = flags::render(EXTEND_TOKEN_EXPIRATION, value);
            if let Some((last_list, last_index)) = found.last().copied() {
                let item = &list(&manifest, last_list).items[last_index];
                splices.push(Splice {
                    start: item.start.byte,
                    end: item.end,
                    with: quote(&rendered, item.style),
                });
                splices.extend(deletions_of(text, &manifest, &found[..found.len() - 1])?);
                if found.len() > 1 {
                    notes.push(format!(
                        "the flag was written {} times (lines {}); it is now written once, where the last one was",
                        found.len(),
                        lines.join(", ")
                    ));
                }
            } else {
                splices.push(insertion(text, &manifest, &rendered)?);
            }
        }
        Target::Remove => {
            splices.extend(deletions_of(text, &manifest, &found)?);
        }
    }

    let new_text = apply(text, splices)?;
    super::verify::prove(text, &new_text, target)?;
    let after = Manifest::parse(&new_text)?.extend_tokens();
    Ok(Edit {
        changed: new_text != text,
        new_text,
        before,
        after,
        notes,
    })
}

/// (list, index in that list) of every occurrence of the flag, in argument order.
fn occurrence_items(manifest: &Manifest) -> Vec<(ListKind, usize)> {
    let arguments = manifest.arguments();
    let values: Vec<&str> = arguments.iter().map(|(_, _, i)| i.value.as_str()).collect();
    flags::occurrences(&values, EXTEND_TOKEN_EXPIRATION)
        .into_iter()
        .map(|i| (arguments[i].0, arguments[i].1))
        .collect()
}

fn list<'m>(manifest: &'m Manifest, kind: ListKind) -> &'m ArgList {
    let list = match kind {
        ListKind::Command => &manifest.command,
        ListKind::Args => &manifest.args,
    };
    list.as_ref()
        .expect("occurrences come from an existing list")
}

fn quote(value: &str, style: Style) -> String {
    match style {
        Style::SingleQuoted => format!("'{value}'"),
        Style::DoubleQuoted => format!("\"{value}\""),
        Style::Plain | Style::Block => value.to_string(),
    }
}

fn unsupported(what: impl Into<String>, item: &ArgItem) -> ManifestError {
    ManifestError::at(
        ErrorKind::UnsupportedArgument(what.into()),
        item.start.line,
        item.start.col,
    )
}

/// Byte offset of the start of the line holding `at`.
fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// Byte offset just past the line terminator of the line holding `at`, and that terminator.
fn line_end(text: &str, at: usize) -> (usize, &str) {
    match text[at..].find('\n') {
        Some(i) => {
            let nl = at + i;
            let term = if nl > 0 && text.as_bytes()[nl - 1] == b'\r' {
                "\r\n"
            } else {
                "\n"
            };
            (nl + 1, term)
        }
        None => (text.len(), ""),
    }
}

/// The `  - ` in front of a block list item; refuses layouts where the item is not on its dash's line.
fn block_prefix<'t>(text: &'t str, item: &ArgItem) -> Result<&'t str, ManifestError> {
    let prefix = &text[line_start(text, item.start.byte)..item.start.byte];
    let trimmed = prefix.trim_start_matches(' ');
    let ok =
        trimmed.starts_with('-') && trimmed[1..].chars().all(|c| c == ' ') && trimmed.len() > 1;
    if ok {
        Ok(prefix)
    } else {
        Err(unsupported(
            "a list item that does not start on its own `- ` line",
            item,
        ))
    }
}

/// Only a comment (or nothing) may follow an item on its line, else the line is not the item's own.
fn rest_of_line_is_free(text: &str, item: &ArgItem) -> bool {
    let (end, term) = line_end(text, item.end);
    let rest = text[item.end..end - term.len()].trim();
    rest.is_empty() || rest.starts_with('#')
}

/// Splices that delete the given occurrences, list by list.
fn deletions_of(
    text: &str,
    manifest: &Manifest,
    doomed: &[(ListKind, usize)],
) -> Result<Vec<Splice>, ManifestError> {
    let mut splices = Vec::new();
    for kind in [ListKind::Command, ListKind::Args] {
        let indexes: Vec<usize> = doomed
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, i)| *i)
            .collect();
        if !indexes.is_empty() {
            splices.extend(deletions(text, list(manifest, kind), &indexes)?);
        }
    }
    Ok(splices)
}

fn deletions(text: &str, list: &ArgList, doomed: &[usize]) -> Result<Vec<Splice>, ManifestError> {
    if doomed.is_empty() {
        return Ok(Vec::new());
    }
    if list.flow {
        return flow_deletions(text, list, doomed);
    }
    let mut splices = Vec::new();
    if doomed.len() == list.items.len() {
        // An emptied block list would read as null, not as an empty list: say `[]` after the key.
        let colon = text[list.key_end..list.start.byte]
            .find(':')
            .map(|i| list.key_end + i + 1)
            .ok_or_else(|| unsupported("a list key without a colon", &list.items[0]))?;
        splices.push(Splice {
            start: colon,
            end: colon,
            with: " []".to_string(),
        });
    }
    for &i in doomed {
        let item = &list.items[i];
        block_prefix(text, item)?;
        if !rest_of_line_is_free(text, item) {
            return Err(unsupported("something else shares the item's line", item));
        }
        let start = line_start(text, item.start.byte);
        let (end, term) = line_end(text, item.end);
        if term.is_empty() && start > 0 {
            // Last line without a terminator: take the previous line's terminator instead, so
            // that deleting an appended line gives back the original bytes.
            let prev_term = if text[..start].ends_with("\r\n") {
                2
            } else {
                1
            };
            splices.push(Splice {
                start: start - prev_term,
                end,
                with: String::new(),
            });
        } else {
            splices.push(Splice {
                start,
                end,
                with: String::new(),
            });
        }
    }
    Ok(splices)
}

/// Deletes runs of adjacent flow items together with one separator, never a comment.
fn flow_deletions(
    text: &str,
    list: &ArgList,
    doomed: &[usize],
) -> Result<Vec<Splice>, ManifestError> {
    let items = &list.items;
    let mut splices = Vec::new();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &i in doomed {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == i => *last = i,
            _ => runs.push((i, i)),
        }
    }
    for (first, last) in runs {
        let backward = (first > 0).then(|| (items[first - 1].end, items[last].end));
        let forward =
            (last + 1 < items.len()).then(|| (items[first].start.byte, items[last + 1].start.byte));
        let whole =
            (first == 0 && last + 1 == items.len()).then(|| (items[0].start.byte, items[last].end));
        let choice = [backward, forward, whole]
            .into_iter()
            .flatten()
            .find(|(s, e)| !text[*s..*e].contains('#'));
        let Some((start, end)) = choice else {
            return Err(unsupported(
                "a comment next to the item in a flow list",
                &items[first],
            ));
        };
        splices.push(Splice {
            start,
            end,
            with: String::new(),
        });
    }
    Ok(splices)
}

/// Inserts the flag in the list that holds the flags, at kubeadm's sorted position.
fn insertion(text: &str, manifest: &Manifest, rendered: &str) -> Result<Splice, ManifestError> {
    let list = match (&manifest.command, &manifest.args) {
        (_, Some(args)) if !args.items.is_empty() => args,
        (Some(command), _) => command,
        (None, Some(args)) => args,
        (None, None) => return Err(ManifestError::new(ErrorKind::NoArgumentList)),
    };
    let first_flag = usize::from(list.kind == ListKind::Command);
    let items = &list.items;
    let position = (first_flag..items.len())
        .find(|&i| {
            flags::split_flag(&items[i].value)
                .is_some_and(|(name, _)| name.as_str() > EXTEND_TOKEN_EXPIRATION)
        })
        .unwrap_or(items.len().max(first_flag));

    if items.is_empty() {
        // Only a flow list can be empty: `[]`.
        return Ok(Splice {
            start: list.start.byte + 1,
            end: list.start.byte + 1,
            with: rendered.to_string(),
        });
    }
    let neighbour = &items[position.min(items.len() - 1)];
    let item = quote(rendered, neighbour.style);
    if list.flow {
        let separator = |a: usize, b: usize| {
            let sep = &text[items[a].end..items[b].start.byte];
            if sep.contains('#') { ", " } else { sep }
        };
        return Ok(if position == 0 {
            let sep = if items.len() > 1 {
                separator(0, 1)
            } else {
                ", "
            };
            Splice {
                start: items[0].start.byte,
                end: items[0].start.byte,
                with: format!("{item}{sep}"),
            }
        } else {
            let sep = if position < items.len() {
                separator(position - 1, position)
            } else if items.len() >= 2 {
                separator(items.len() - 2, items.len() - 1)
            } else {
                ", "
            };
            let at = items[position - 1].end;
            Splice {
                start: at,
                end: at,
                with: format!("{sep}{item}"),
            }
        });
    }

    let prefix = block_prefix(text, neighbour)?;
    let (_, neighbour_term) = line_end(text, neighbour.end);
    let eol = match neighbour_term {
        "" => {
            if text.contains("\r\n") {
                "\r\n"
            } else {
                "\n"
            }
        }
        term => term,
    };
    if position < items.len() {
        let at = line_start(text, neighbour.start.byte);
        return Ok(Splice {
            start: at,
            end: at,
            with: format!("{prefix}{item}{eol}"),
        });
    }
    if !rest_of_line_is_free(text, neighbour) {
        return Err(unsupported(
            "something else shares the item's line",
            neighbour,
        ));
    }
    let (at, term) = line_end(text, neighbour.end);
    Ok(Splice {
        start: at,
        end: at,
        with: if term.is_empty() {
            format!("{eol}{prefix}{item}")
        } else {
            format!("{prefix}{item}{eol}")
        },
    })
}

fn apply(text: &str, mut splices: Vec<Splice>) -> Result<String, ManifestError> {
    splices.sort_by_key(|s| (s.start, s.end));
    // Block deletions of neighbouring lines may touch or overlap (the last-line case): merge.
    let mut merged: Vec<Splice> = Vec::new();
    for splice in splices {
        if let Some(prev) = merged.last_mut() {
            if splice.start < prev.end && prev.with.is_empty() && splice.with.is_empty() {
                prev.end = prev.end.max(splice.end);
                continue;
            }
            if splice.start < prev.end {
                return Err(ManifestError::new(ErrorKind::ProofFailed(
                    "two edits overlap".into(),
                )));
            }
        }
        merged.push(splice);
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut cursor = 0;
    for splice in merged {
        out.push_str(&text[cursor..splice.start]);
        out.push_str(&splice.with);
        cursor = splice.end;
    }
    out.push_str(&text[cursor..]);
    Ok(out)
}
