//! The manifest engine: pure functions from the text of a static pod manifest to facts, or to a
//! new text plus a report. No I/O happens here, so every behaviour is testable on strings.
//!
//! Two independent YAML readers are used on purpose: the positioned event tree
//! ([`yaml`], saphyr-parser) finds *where* to edit, and serde-saphyr re-reads both versions to
//! prove *what* changed ([`verify`]). An edit is accepted only when both agree.

mod edit;
pub mod flags;
mod verify;
pub mod yaml;

use std::fmt;

pub use edit::{Edit, Target, edit_extend_tokens};
use flags::{BoolValue, EXTEND_TOKEN_EXPIRATION};
use yaml::{Node, Pos, Style};

/// What is wrong with a manifest, with the position a person should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub kind: ErrorKind,
    pub line: Option<usize>,
    pub col: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    Empty,
    InvalidYaml(String),
    TabIndentation,
    MultipleDocuments,
    NotAPod(String),
    NoContainers,
    NoApiserverContainer(Vec<String>),
    UnsupportedArgument(String),
    NoArgumentList,
    ProofFailed(String),
    /// The kubelet would read the flag differently from what the file shows plainly.
    CannotTell(String),
    /// Lines end in a bare CR (classic Mac): YAML readers see one long line.
    CrOnlyLineEndings,
}

impl ManifestError {
    pub fn new(kind: ErrorKind) -> Self {
        ManifestError {
            kind,
            line: None,
            col: None,
        }
    }

    pub fn at(kind: ErrorKind, line: usize, col: usize) -> Self {
        ManifestError {
            kind,
            line: Some(line),
            col: Some(col),
        }
    }

    fn at_pos(kind: ErrorKind, pos: Pos) -> Self {
        Self::at(kind, pos.line, pos.col)
    }

    /// What the operator should do about it.
    pub fn hint(&self) -> &'static str {
        match self.kind {
            ErrorKind::Empty => "restore the manifest from a backup (kubeadm-recover backups list)",
            ErrorKind::InvalidYaml(_) => {
                "fix the YAML at that position; the kubelet cannot read it either"
            }
            ErrorKind::TabIndentation => {
                "YAML indentation must be spaces: replace the tab with spaces"
            }
            ErrorKind::MultipleDocuments => {
                "a static pod manifest holds one document: remove the extra `---` section"
            }
            ErrorKind::NotAPod(_) => "point the tool at the kube-apiserver static pod manifest",
            ErrorKind::NoContainers | ErrorKind::NoApiserverContainer(_) => {
                "the pod needs a container named kube-apiserver (or whose command starts with kube-apiserver)"
            }
            ErrorKind::UnsupportedArgument(_) => {
                "write the apiserver's arguments as plain or quoted strings, then run the tool again"
            }
            ErrorKind::NoArgumentList => "give the kube-apiserver container a command or args list",
            ErrorKind::ProofFailed(_) => {
                "nothing was written; edit the flag by hand or report this manifest as a bug"
            }
            ErrorKind::CrOnlyLineEndings => {
                "convert the line endings to LF (e.g. `tr '\\r' '\\n'` into a new file, then mv it into place)"
            }
            ErrorKind::CannotTell(_) => {
                "write the manifest plainly, as kubeadm does (no merge keys, no repeated keys, kube-apiserver \
                 itself as the command), then run the tool again; it will not guess"
            }
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(line), Some(col)) = (self.line, self.col) {
            write!(f, "line {line}, column {col}: ")?;
        }
        match &self.kind {
            ErrorKind::Empty => write!(f, "the manifest is empty"),
            ErrorKind::InvalidYaml(msg) => write!(f, "invalid YAML: {msg}"),
            ErrorKind::TabIndentation => write!(f, "a tab is used for indentation"),
            ErrorKind::MultipleDocuments => write!(f, "the file holds several YAML documents"),
            ErrorKind::NotAPod(kind) => write!(f, "not a Pod (kind: {kind})"),
            ErrorKind::NoContainers => write!(f, "the pod has no spec.containers list"),
            ErrorKind::NoApiserverContainer(names) => write!(
                f,
                "no kube-apiserver container (containers: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
            ErrorKind::UnsupportedArgument(what) => {
                write!(f, "unsupported kube-apiserver argument: {what}")
            }
            ErrorKind::NoArgumentList => {
                write!(
                    f,
                    "the kube-apiserver container has neither command nor args"
                )
            }
            ErrorKind::ProofFailed(why) => write!(f, "the edit could not be proved safe: {why}"),
            ErrorKind::CannotTell(why) => {
                write!(f, "cannot tell what the apiserver runs with: {why}")
            }
            ErrorKind::CrOnlyLineEndings => write!(
                f,
                "lines end in a bare carriage return (CR, old Mac style), not LF or CRLF"
            ),
        }
    }
}

impl std::error::Error for ManifestError {}

/// Which of the container's two argument lists an item is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    Command,
    Args,
}

/// One string item of `command` or `args`, with its exact place in the source.
#[derive(Debug, Clone)]
pub struct ArgItem {
    pub value: String,
    pub style: Style,
    pub start: Pos,
    pub end: usize,
}

#[derive(Debug, Clone)]
pub struct ArgList {
    pub kind: ListKind,
    pub items: Vec<ArgItem>,
    pub flow: bool,
    /// Where the list starts: `[` for a flow list, the first `-` for a block list.
    pub start: Pos,
    /// Just past the `command`/`args` key, so an emptied block list can become `[]`.
    pub key_end: usize,
}

/// The kube-apiserver container of a parsed manifest.
#[derive(Debug, Clone)]
pub struct Manifest<'t> {
    pub text: &'t str,
    pub container_index: usize,
    pub container_name: Option<String>,
    pub image: Option<String>,
    pub command: Option<ArgList>,
    pub args: Option<ArgList>,
    /// The first httpGet probe's host and port, where the kubelet checks the apiserver.
    pub probe: Option<(Option<String>, String)>,
    /// kubeadm's `kube-apiserver.advertise-address.endpoint` annotation, naming this node's pod.
    pub advertise_endpoint: Option<String>,
    /// The pod's `terminationGracePeriodSeconds`, when given: how long the kubelet lets the OLD
    /// apiserver shut down before it kills it and starts the new one.
    pub termination_grace_seconds: Option<u64>,
}

/// The flag's state as written in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum FlagState {
    /// The last occurrence sets a valid boolean.
    Explicit { value: bool },
    /// The last occurrence's value is not one Go's ParseBool accepts: the apiserver will not start.
    Invalid { value: String },
    /// Not set: the apiserver's default applies (`None` when the version is unknown).
    Absent {
        #[serde(rename = "default")]
        default: Option<bool>,
    },
}

impl FlagState {
    /// The value the apiserver runs with, when known.
    pub fn effective(&self) -> Option<bool> {
        match self {
            FlagState::Explicit { value } => Some(*value),
            FlagState::Invalid { .. } => None,
            FlagState::Absent { default } => *default,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            FlagState::Explicit { value } => format!("explicitly {value}"),
            FlagState::Invalid { value } => {
                format!("INVALID value {value:?} (the apiserver will refuse to start)")
            }
            FlagState::Absent { default: Some(d) } => format!("not set (default {d})"),
            FlagState::Absent { default: None } => {
                "not set (default unknown: no version in the image tag)".to_string()
            }
        }
    }
}

/// Where the flag is written, for reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Occurrence {
    pub list: ListKind,
    pub line: usize,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExtendTokens {
    #[serde(flatten)]
    pub state: FlagState,
    pub occurrences: Vec<Occurrence>,
}

impl<'t> Manifest<'t> {
    pub fn parse(text: &'t str) -> Result<Self, ManifestError> {
        if let Some(at) = text
            .find('\r')
            .filter(|&i| text.as_bytes().get(i + 1) != Some(&b'\n'))
        {
            let line = 1 + text[..at].matches('\n').count();
            let col = 1 + at - text[..at].rfind('\n').map_or(0, |n| n + 1);
            return Err(ManifestError::at(ErrorKind::CrOnlyLineEndings, line, col));
        }
        if let Some((line, col)) = tab_indentation(text) {
            return Err(ManifestError::at(ErrorKind::TabIndentation, line, col));
        }
        let root = yaml::parse_document(text)?;
        let Node::Map { .. } = &root else {
            return Err(ManifestError::at_pos(
                ErrorKind::NotAPod("not a mapping".into()),
                root.start(),
            ));
        };
        match root.get("kind") {
            Some(kind) if kind.as_str() == Some("Pod") => {}
            Some(kind) => {
                return Err(ManifestError::at_pos(
                    ErrorKind::NotAPod(kind.as_str().unwrap_or("?").to_string()),
                    kind.start(),
                ));
            }
            None => {
                return Err(ManifestError::at_pos(
                    ErrorKind::NotAPod("missing".into()),
                    root.start(),
                ));
            }
        }
        if let Some((why, pos)) = ambiguity(&root) {
            return Err(ManifestError::at_pos(ErrorKind::CannotTell(why), pos));
        }
        let containers = match root.get("spec").and_then(|s| s.get("containers")) {
            Some(Node::Seq { items, .. }) => items,
            _ => return Err(ManifestError::new(ErrorKind::NoContainers)),
        };
        let (index, container) = find_apiserver_container(containers).ok_or_else(|| {
            let names = containers
                .iter()
                .filter_map(|c| c.get("name").and_then(Node::as_str))
                .map(str::to_string)
                .collect();
            let pos = root
                .get("spec")
                .and_then(|s| s.key_node("containers"))
                .map(Node::start);
            let err = ErrorKind::NoApiserverContainer(names);
            match pos {
                Some(p) => ManifestError::at_pos(err, p),
                None => ManifestError::new(err),
            }
        })?;
        if let Some(Node::Seq { items, .. }) = container.get("command")
            && let Some(program) = items.first().and_then(Node::as_str)
            && !program
                .rsplit('/')
                .next()
                .unwrap_or(program)
                .starts_with("kube-apiserver")
        {
            return Err(ManifestError::at_pos(
                ErrorKind::CannotTell(format!(
                    "the container runs {program:?}, not kube-apiserver itself: the apiserver's real \
                     arguments are whatever that program passes on"
                )),
                items[0].start(),
            ));
        }
        Ok(Manifest {
            text,
            container_index: index,
            container_name: container
                .get("name")
                .and_then(Node::as_str)
                .map(str::to_string),
            image: container
                .get("image")
                .and_then(Node::as_str)
                .map(str::to_string),
            command: arg_list(container, "command", ListKind::Command)?,
            args: arg_list(container, "args", ListKind::Args)?,
            probe: ["livenessProbe", "readinessProbe", "startupProbe"]
                .iter()
                .find_map(|probe| {
                    let http = container.get(probe)?.get("httpGet")?;
                    let port = http.get("port")?.as_str()?.to_string();
                    let host = http.get("host").and_then(Node::as_str).map(str::to_string);
                    Some((host, port))
                }),
            advertise_endpoint: root
                .get("metadata")
                .and_then(|m| m.get("annotations"))
                .and_then(|a| {
                    a.get("kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint")
                })
                .and_then(Node::as_str)
                .map(str::to_string),
            termination_grace_seconds: root
                .get("spec")
                .and_then(|s| s.get("terminationGracePeriodSeconds"))
                .and_then(Node::as_str)
                .and_then(|s| s.parse().ok()),
        })
    }

    /// Every argument after the program name: `command[1..]` then `args`, as the apiserver sees
    /// them. (Without `command`, the image's entrypoint is the program and all of `args` count.)
    pub fn arguments(&self) -> Vec<(ListKind, usize, &ArgItem)> {
        let mut out = Vec::new();
        if let Some(command) = &self.command {
            for (i, item) in command.items.iter().enumerate().skip(1) {
                out.push((ListKind::Command, i, item));
            }
        }
        if let Some(args) = &self.args {
            for (i, item) in args.items.iter().enumerate() {
                out.push((ListKind::Args, i, item));
            }
        }
        out
    }

    pub fn argument_values(&self) -> Vec<&str> {
        self.arguments()
            .into_iter()
            .map(|(_, _, item)| item.value.as_str())
            .collect()
    }

    /// The last value of `--name=value`, as the apiserver would read it.
    pub fn flag(&self, name: &str) -> Option<String> {
        flags::last_value(&self.argument_values(), name).map(str::to_string)
    }

    /// `(major, minor, patch)` from the image tag, e.g. `registry.k8s.io/kube-apiserver:v1.29.3`.
    pub fn version(&self) -> Option<(u32, u32, u32)> {
        self.image.as_deref().and_then(image_version)
    }

    /// The port the apiserver serves on: its last `--secure-port`, or 6443.
    pub fn secure_port(&self) -> u16 {
        self.flag("secure-port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(6443)
    }

    /// Where to probe the apiserver: the manifest's probe host and port (numeric), falling
    /// back to 127.0.0.1 and `--secure-port`.
    pub fn probe_endpoint(&self) -> (String, u16) {
        let (host, port) = match &self.probe {
            Some((host, port)) => (host.clone(), port.parse().ok()),
            None => (None, None),
        };
        (
            host.unwrap_or_else(|| "127.0.0.1".into()),
            port.unwrap_or_else(|| self.secure_port()),
        )
    }

    pub fn extend_tokens(&self) -> ExtendTokens {
        extend_tokens_in(&self.arguments(), self.version())
    }
}

/// The flag's state in an argument list as the apiserver sees it (also a running process's
/// command line, where lines are argument positions).
pub fn extend_tokens_of_process(args: &[String], version: Option<(u32, u32, u32)>) -> ExtendTokens {
    let items: Vec<ArgItem> = args
        .iter()
        .enumerate()
        .map(|(i, value)| ArgItem {
            value: value.clone(),
            style: Style::Plain,
            start: Pos {
                byte: 0,
                line: i + 1,
                col: 1,
            },
            end: 0,
        })
        .collect();
    let arguments: Vec<(ListKind, usize, &ArgItem)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (ListKind::Command, i, item))
        .collect();
    extend_tokens_in(&arguments, version)
}

fn extend_tokens_in(
    arguments: &[(ListKind, usize, &ArgItem)],
    version: Option<(u32, u32, u32)>,
) -> ExtendTokens {
    let values: Vec<&str> = arguments.iter().map(|(_, _, i)| i.value.as_str()).collect();
    let found = flags::occurrences(&values, EXTEND_TOKEN_EXPIRATION);
    let occurrences = found
        .iter()
        .map(|&i| Occurrence {
            list: arguments[i].0,
            line: arguments[i].2.start.line,
            text: arguments[i].2.value.clone(),
        })
        .collect();
    let state = match found.last() {
        Some(&i) => match flags::bool_value(flags::split_flag(values[i]).and_then(|(_, v)| v)) {
            BoolValue::Valid(value) => FlagState::Explicit { value },
            BoolValue::Invalid(value) => FlagState::Invalid { value },
        },
        None => FlagState::Absent {
            default: version.map(|(major, minor, _)| default_extend(major, minor)),
        },
    };
    ExtendTokens { state, occurrences }
}

/// `--service-account-extend-token-expiration` defaults to true from 1.20 on (DESIGN.md §1).
fn default_extend(major: u32, minor: u32) -> bool {
    (major, minor) >= (1, 20)
}

/// The container named `kube-apiserver`, else the first whose command starts with
/// `kube-apiserver`. Never simply the first container: KMS plugins run as sidecars.
/// Where the kubelet's reading of the file may differ from a plain reading of it: a key given
/// twice in one mapping (the kubelet's decoder takes the last, a reader may take the first), or
/// a merge key (`<<: *base`) that brings in entries from elsewhere.
fn ambiguity(node: &Node) -> Option<(String, Pos)> {
    match node {
        Node::Map { entries, .. } => {
            for (i, (key, value)) in entries.iter().enumerate() {
                let name = key.as_str().unwrap_or_default();
                if name == "<<" {
                    return Some((
                        "a YAML merge key (`<<`) brings in entries from elsewhere in the file"
                            .into(),
                        key.start(),
                    ));
                }
                if let Some((earlier, _)) = entries[..i]
                    .iter()
                    .find(|(k, _)| k.as_str().is_some() && k.as_str() == key.as_str())
                {
                    return Some((
                        format!(
                            "the key `{name}` is given twice in one mapping (lines {} and {}); the kubelet takes the last",
                            earlier.start().line,
                            key.start().line
                        ),
                        key.start(),
                    ));
                }
                if let Some(found) = ambiguity(value) {
                    return Some(found);
                }
            }
            None
        }
        Node::Seq { items, .. } => items.iter().find_map(ambiguity),
        Node::Scalar { .. } | Node::Alias { .. } => None,
    }
}

fn find_apiserver_container(containers: &[Node]) -> Option<(usize, &Node)> {
    let named = containers
        .iter()
        .position(|c| c.get("name").and_then(Node::as_str) == Some("kube-apiserver"));
    let by_command = || {
        containers.iter().position(|c| match c.get("command") {
            Some(Node::Seq { items, .. }) => items
                .first()
                .and_then(Node::as_str)
                .map(|program| program.rsplit('/').next().unwrap_or(program))
                .is_some_and(|program| program.starts_with("kube-apiserver")),
            _ => false,
        })
    };
    named.or_else(by_command).map(|i| (i, &containers[i]))
}

fn arg_list(container: &Node, key: &str, kind: ListKind) -> Result<Option<ArgList>, ManifestError> {
    let Some(node) = container.get(key) else {
        return Ok(None);
    };
    let unsupported = |what: String, pos: Pos| {
        Err(ManifestError::at_pos(
            ErrorKind::UnsupportedArgument(what),
            pos,
        ))
    };
    let (items, flow, start) = match node {
        Node::Seq {
            has_properties: true,
            start,
            ..
        } => return unsupported(format!("an anchor or tag on the {key} list"), *start),
        Node::Seq {
            items, flow, start, ..
        } => (items, *flow, *start),
        Node::Alias { start } => return unsupported(format!("an alias as the {key} list"), *start),
        Node::Scalar { value, start, .. }
            if value.is_empty() || value == "~" || value == "null" =>
        {
            return unsupported(format!("{key} is null"), *start);
        }
        other => return unsupported(format!("{key} is not a list"), other.start()),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Node::Scalar {
                has_properties: true,
                start,
                ..
            } => return unsupported("an anchor or tag inside the argument list".into(), *start),
            Node::Scalar {
                style: Style::Block,
                start,
                ..
            } => {
                return unsupported(
                    "a block scalar (| or >) inside the argument list".into(),
                    *start,
                );
            }
            Node::Scalar {
                value,
                style,
                start,
                end,
                ..
            } => out.push(ArgItem {
                value: value.clone(),
                style: *style,
                start: *start,
                end: *end,
            }),
            Node::Alias { start } => {
                return unsupported("an alias inside the argument list".into(), *start);
            }
            other => return unsupported("a nested list or mapping".into(), other.start()),
        }
    }
    // The editor slices the source between items: their extents must be ordered and disjoint.
    let mut cursor = start.byte;
    for item in &out {
        if item.start.byte < cursor || item.end < item.start.byte {
            return unsupported(
                "an item whose extent in the text cannot be located".into(),
                item.start,
            );
        }
        cursor = item.end;
    }
    let key_end = match container.key_node(key) {
        Some(Node::Scalar { end, .. }) => *end,
        _ => start.byte,
    };
    Ok(Some(ArgList {
        kind,
        items: out,
        flow,
        start,
        key_end,
    }))
}

/// The first line whose indentation contains a tab, as (line, column), both 1-based.
fn tab_indentation(text: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(n, line)| {
        let indent_len = line.len() - line.trim_start_matches([' ', '\t']).len();
        let indent = &line[..indent_len];
        let blank = line.trim().is_empty();
        (!blank)
            .then(|| indent.find('\t'))
            .flatten()
            .map(|col| (n + 1, col + 1))
    })
}

/// Parses the version out of an image reference's tag, ignoring registry ports and digests.
pub fn image_version(image: &str) -> Option<(u32, u32, u32)> {
    let name = image.split('@').next()?;
    let last = name.rsplit('/').next()?;
    let tag = last.split_once(':')?.1;
    let tag = tag.strip_prefix('v').unwrap_or(tag);
    let core = tag.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next().unwrap_or(Some(0))?;
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;

/// The fuzz property, also run by the property tests on stable: parsing and editing any input
/// never panics, and every edit the engine accepts re-reads to exactly the intended state.
pub fn check_any_input(text: &str) {
    let Ok(manifest) = Manifest::parse(text) else {
        return;
    };
    let _ = manifest.extend_tokens();
    for target in [Target::Set(true), Target::Set(false), Target::Remove] {
        if let Ok(edit) = edit_extend_tokens(text, target) {
            let after = Manifest::parse(&edit.new_text)
                .expect("an accepted edit re-parses")
                .extend_tokens();
            match target {
                Target::Set(value) => assert_eq!(after.state, FlagState::Explicit { value }),
                Target::Remove => assert!(after.occurrences.is_empty()),
            }
            if edit.changed {
                verify::prove(text, &edit.new_text, target).expect("accepted edits are proved");
            }
        }
    }
}
