//! The shape ARCHITECTURE.md promises, held by the source itself: no module uses another that
//! uses it back, no command module imports another, the commands stay thin.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Every module of the product (`change::executor`), with its file.
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new(SRC), &mut files);
    files
        .into_iter()
        .filter_map(|file| {
            let rel = file.strip_prefix(SRC).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            // Test modules in files of their own use what they test.
            if matches!(
                parts.last().map(String::as_str),
                Some("tests" | "proptests")
            ) {
                return None;
            }
            Some((parts.join("::"), file))
        })
        .collect()
}

/// The code of a file without its `#[cfg(test)]` part.
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The modules `name` names with `crate::…` (the longest module each path starts with).
fn uses(name: &str, text: &str, all: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let resolve = |path: &str| {
        let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        (1..=parts.len())
            .rev()
            .map(|i| parts[..i].join("::"))
            .find(|m| all.contains_key(m))
    };
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let path = &rest[..end];
        let mut found = resolve(path);
        // `use crate::{a, b::c}`: each item.
        if path.is_empty() && rest.starts_with('{') {
            let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
            for item in group.split(',') {
                if let Some(m) = resolve(item.trim().split(' ').next().unwrap_or_default()) {
                    out.insert(m);
                }
            }
            found = None;
        }
        if let Some(m) = found.filter(|m| {
            m != name
                && !m.starts_with(&format!("{name}::"))
                && !name.starts_with(&format!("{m}::"))
        }) {
            out.insert(m);
        }
    }
    out
}

#[test]
fn no_module_uses_one_that_uses_it_back() {
    let all = modules();
    let graph: BTreeMap<String, BTreeSet<String>> = all
        .iter()
        .map(|(name, file)| (name.clone(), uses(name, &code(file), &all)))
        .collect();
    // Depth-first search for a back edge, reporting the cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == node) {
            cycles.push(format!("{} -> {node}", path[at..].join(" -> ")));
            return;
        }
        if !done.insert(node.to_string()) {
            return;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, done, path, cycles);
        }
        path.pop();
    }
    let (mut done, mut cycles) = (BTreeSet::new(), Vec::new());
    for name in graph.keys() {
        visit(name, &graph, &mut done, &mut Vec::new(), &mut cycles);
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_command_imports_another_and_each_stays_thin() {
    let all = modules();
    let commands: Vec<&String> = all.keys().filter(|m| m.starts_with("commands::")).collect();
    assert!(commands.len() > 5, "{commands:?}");
    for name in &commands {
        let text = code(&all[*name]);
        let others: Vec<String> = uses(name, &text, &all)
            .into_iter()
            .filter(|m| m.starts_with("commands::"))
            .chain(
                commands
                    .iter()
                    .map(|c| c.trim_start_matches("commands::"))
                    .filter(|c| text.contains(&format!("super::{c}::")))
                    .map(str::to_string),
            )
            .collect();
        assert!(others.is_empty(), "{name} imports {others:?}");
        let lines = std::fs::read_to_string(&all[*name])
            .unwrap()
            .lines()
            .count();
        assert!(
            lines <= 320,
            "{name} has {lines} lines: its planning belongs below it"
        );
    }
}

#[test]
fn the_product_has_no_string_errors() {
    let offenders: Vec<String> = modules()
        .iter()
        .flat_map(|(name, file)| {
            code(file)
                .lines()
                .filter(|l| l.contains(", String>") && l.contains("Result<"))
                .map(|l| format!("{name}: {}", l.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "Result<_, String>:\n{}",
        offenders.join("\n")
    );
}
