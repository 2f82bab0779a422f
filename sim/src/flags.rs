//! The simulated apiserver's own reading of its command line, as the real kube-apiserver reads
//! it: spf13/pflag long flags, component-base's word-separator normalization, and Go's
//! `strconv.ParseBool` for booleans. Written apart from the product's flag parsing on purpose:
//! the tool's tests run the tool against this simulator, and a parsing bug shared by both sides
//! would pass them.
//!
//! Only the long `--name=value` and bare `--name` forms are flags here: kubeadm writes every
//! flag of the manifest that way, and without the real apiserver's full flag set there is no
//! telling which bare flag would take the next argument as its value (`--name value`).

/// Go's `strconv.ParseBool`: these twelve spellings and nothing else (no `yes`, no spaces).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A command line as pflag splits it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CommandLine<'a> {
    /// Every flag, in order, with its `=value` when it has one. pflag sets a flag at each
    /// occurrence, so the last one is what the apiserver runs with.
    pub flags: Vec<(String, Option<&'a str>)>,
    /// What is not a flag, and everything after a bare `--`.
    pub positional: Vec<&'a str>,
}

impl<'a> CommandLine<'a> {
    /// pflag's `parseArgs` for long flags: a bare `--` ends the flags; `--`, then nothing, a
    /// dash or an equals sign is "bad flag syntax", which stops the apiserver.
    pub fn parse(args: &[&'a str]) -> Result<Self, String> {
        let mut line = CommandLine::default();
        let mut rest = args.iter();
        while let Some(&arg) = rest.next() {
            if arg == "--" {
                line.positional.extend(rest);
                break;
            }
            let Some(body) = arg.strip_prefix("--") else {
                line.positional.push(arg);
                continue;
            };
            if body.is_empty() || body.starts_with(['-', '=']) {
                return Err(format!("bad flag syntax: {arg}"));
            }
            let (name, value) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            // component-base's WordSepNormalizeFunc: `--a_b` is `--a-b`.
            line.flags.push((name.replace('_', "-"), value));
        }
        Ok(line)
    }

    /// The last occurrence of flag `name`: `Some(None)` when it was given bare.
    pub fn last(&self, name: &str) -> Option<Option<&'a str>> {
        self.flags
            .iter()
            .rev()
            .find(|(flag, _)| flag == name)
            .map(|(_, value)| *value)
    }

    /// The value of a flag given as `--name=value`, the last occurrence's.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.last(name).flatten()
    }

    /// A boolean flag the way pflag sets it: every occurrence must parse, the last one wins,
    /// and `default` when it is absent.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, String> {
        self.flags
            .iter()
            .filter(|(flag, _)| flag == name)
            .try_fold(default, |_, (_, value)| bool_value(name, *value))
    }
}

/// What one occurrence of a boolean flag sets: a bare `--name` is true (pflag's NoOptDefVal).
/// The error is the real apiserver's start-up message.
pub fn bool_value(name: &str, value: Option<&str>) -> Result<bool, String> {
    match value {
        None => Ok(true),
        Some(text) => parse_bool(text).ok_or_else(|| {
            format!(
                "invalid argument {text:?} for \"--{name}\" flag: strconv.ParseBool: parsing {text:?}: invalid syntax"
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_bool_takes_exactly_gos_spellings() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in [
            "", "yes", "no", "on", "y", "tRuE", "fALSE", "2", "01", " true", "true\n",
        ] {
            assert_eq!(parse_bool(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn flags_positionals_and_the_double_dash() {
        let line = CommandLine::parse(&[
            "--secure-port=6443",
            "--anonymous_auth",
            "",
            "stray",
            "-v=2",
            "--",
            "--after=1",
        ])
        .unwrap();
        assert_eq!(
            line.flags,
            vec![
                ("secure-port".to_string(), Some("6443")),
                ("anonymous-auth".to_string(), None),
            ]
        );
        assert_eq!(line.positional, vec!["", "stray", "-v=2", "--after=1"]);
        assert_eq!(line.value("after"), None);
    }

    #[test]
    fn a_value_may_hold_equals_signs_and_be_empty() {
        let line = CommandLine::parse(&["--a=b=c", "--e="]).unwrap();
        assert_eq!(line.value("a"), Some("b=c"));
        assert_eq!(line.last("e"), Some(Some("")));
    }

    #[test]
    fn bad_flag_syntax_stops_it() {
        for bad in ["---x", "--=x", "---"] {
            assert_eq!(
                CommandLine::parse(&["--ok=1", bad]),
                Err(format!("bad flag syntax: {bad}"))
            );
        }
    }

    #[test]
    fn the_last_occurrence_wins_and_a_longer_name_is_another_flag() {
        let line = CommandLine::parse(&["--x=1", "--x-y=2", "--xy=3", "--x", "--x=4"]).unwrap();
        assert_eq!(line.value("x"), Some("4"));
        assert_eq!(line.value("x-y"), Some("2"));
        let bare_last = CommandLine::parse(&["--x=1", "--x"]).unwrap();
        assert_eq!(bare_last.last("x"), Some(None));
        assert_eq!(bare_last.value("x"), None);
    }

    #[test]
    fn booleans_bare_true_last_wins_and_every_occurrence_must_parse() {
        let parse = |args: &[&str]| CommandLine::parse(args).unwrap().bool("b", true);
        assert_eq!(parse(&[]), Ok(true));
        assert_eq!(parse(&["--b=false"]), Ok(false));
        assert_eq!(parse(&["--b=false", "--b"]), Ok(true));
        assert_eq!(parse(&["--b=1", "--b=F"]), Ok(false));
        assert_eq!(
            parse(&["--b=yes", "--b=true"]),
            Err(r#"invalid argument "yes" for "--b" flag: strconv.ParseBool: parsing "yes": invalid syntax"#.into())
        );
        assert_eq!(
            CommandLine::parse(&["--b=0"]).unwrap().bool("other", false),
            Ok(false)
        );
    }
}
