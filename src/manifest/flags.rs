//! Flag parsing the way kube-apiserver (spf13/pflag + component-base) does it.

/// The flag this tool exists to turn on and off.
pub const EXTEND_TOKEN_EXPIRATION: &str = "service-account-extend-token-expiration";

/// Go's `strconv.ParseBool`, which pflag uses for boolean flags.
pub fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// component-base registers `WordSepNormalizeFunc`, so `--a_b` and `--a-b` are the same flag.
pub fn normalize_name(name: &str) -> String {
    name.replace('_', "-")
}

/// A `--name[=value]` argument, split. `None` for positional arguments and the `--` terminator.
pub fn split_flag(arg: &str) -> Option<(String, Option<&str>)> {
    let body = arg.strip_prefix("--")?;
    if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
        return None;
    }
    Some(match body.split_once('=') {
        Some((name, value)) => (normalize_name(name), Some(value)),
        None => (normalize_name(body), None),
    })
}

/// The value a boolean flag argument sets: a bare `--name` means true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoolValue {
    Valid(bool),
    Invalid(String),
}

pub fn bool_value(value: Option<&str>) -> BoolValue {
    match value {
        None => BoolValue::Valid(true),
        Some(v) => match parse_go_bool(v) {
            Some(b) => BoolValue::Valid(b),
            None => BoolValue::Invalid(v.to_string()),
        },
    }
}

/// Indexes (into `args`) of every argument that sets flag `name`, in order; the last one wins.
/// Arguments after a bare `--` are positional, as pflag treats them.
pub fn occurrences(args: &[&str], name: &str) -> Vec<usize> {
    let mut found = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if *arg == "--" {
            break;
        }
        if split_flag(arg).is_some_and(|(flag, _)| flag == name) {
            found.push(i);
        }
    }
    found
}

/// The effective value of a (non-boolean) flag given as `--name=value`: the last one wins.
pub fn last_value<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    occurrences(args, name)
        .last()
        .and_then(|&i| split_flag(args[i]).and_then(|(_, v)| v))
}

/// The canonical spelling this tool writes.
pub fn render(name: &str, value: bool) -> String {
    format!("--{name}={value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_parse_bool_accepts_exactly_its_spellings() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(f), Some(false), "{f}");
        }
        for bad in ["", "yes", "on", "tRUE", "2", " true", "false "] {
            assert_eq!(parse_go_bool(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bare_boolean_flag_means_true_and_bad_values_are_reported() {
        assert_eq!(bool_value(None), BoolValue::Valid(true));
        assert_eq!(bool_value(Some("F")), BoolValue::Valid(false));
        assert_eq!(bool_value(Some("yes")), BoolValue::Invalid("yes".into()));
        assert_eq!(bool_value(Some("")), BoolValue::Invalid("".into()));
    }

    #[test]
    fn a_longer_flag_with_the_same_prefix_is_a_different_flag() {
        let args = [
            "kube-apiserver",
            "--service-account-extend-token-expiration-x=1",
            "--service-account-extend-token-expirations",
            "--service-account-extend-token-expiration=false",
        ];
        assert_eq!(occurrences(&args, EXTEND_TOKEN_EXPIRATION), vec![3]);
    }

    #[test]
    fn last_occurrence_wins_and_double_dash_ends_flags() {
        let args = ["--a=1", "--b", "--a_x=2", "--a=3", "--", "--a=4"];
        assert_eq!(occurrences(&args, "a"), vec![0, 3]);
        assert_eq!(last_value(&args, "a"), Some("3"));
        assert_eq!(
            occurrences(&args, "a-x"),
            vec![2],
            "underscores normalize to dashes"
        );
    }
}
