//! Property tests: random kubeadm-shaped manifests, random layout, random flag occurrences.
use proptest::prelude::*;

use super::flags::EXTEND_TOKEN_EXPIRATION;
use super::*;

const OTHER_FLAGS: &[&str] = &[
    "--advertise-address=127.0.0.1",
    "--authorization-mode=Node,RBAC",
    "--secure-port=6443",
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    "--service-account-key-file=/etc/kubernetes/pki/sa.pub",
    "--service-account-extend-token-expiration-x=1",
    "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
];
const SPELLINGS: &[&str] = &[
    "--service-account-extend-token-expiration",
    "--service-account-extend-token-expiration=true",
    "--service-account-extend-token-expiration=True",
    "--service-account-extend-token-expiration=1",
    "--service-account-extend-token-expiration=false",
    "--service-account-extend-token-expiration=F",
    "--service_account_extend_token_expiration=0",
];

#[derive(Debug, Clone)]
struct Item {
    text: &'static str,
    quote: u8,
    comment: bool,
    comment_line_before: bool,
}

#[derive(Debug, Clone)]
struct Shape {
    crlf: bool,
    indent: usize,
    dash_gap: usize,
    flow: bool,
    in_args: bool,
    final_newline: bool,
    sidecar: bool,
    items: Vec<Item>,
}

fn item(texts: &'static [&'static str]) -> impl Strategy<Value = Item> {
    (
        prop::sample::select(texts),
        0u8..3,
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(text, quote, comment, comment_line_before)| Item {
            text,
            quote,
            comment,
            comment_line_before,
        })
}

fn shape() -> impl Strategy<Value = Shape> {
    let items = (
        prop::collection::vec(item(OTHER_FLAGS), 0..6),
        prop::collection::vec((item(SPELLINGS), any::<prop::sample::Index>()), 0..3),
    )
        .prop_map(|(mut items, flags)| {
            for (flag, at) in flags {
                let at = at.index(items.len() + 1);
                items.insert(at, flag);
            }
            items
        });
    (
        any::<bool>(),
        0usize..3,
        1usize..3,
        prop::bool::weighted(0.3),
        any::<bool>(),
        prop::bool::weighted(0.8),
        any::<bool>(),
        items,
    )
        .prop_map(
            |(crlf, indent, dash_gap, flow, in_args, final_newline, sidecar, items)| Shape {
                crlf,
                indent,
                dash_gap,
                flow,
                in_args,
                final_newline,
                sidecar,
                items,
            },
        )
}

fn quoted(text: &str, quote: u8) -> String {
    match quote {
        1 => format!("'{text}'"),
        2 => format!("\"{text}\""),
        _ => text.to_string(),
    }
}

fn render(shape: &Shape) -> String {
    let pad = " ".repeat(shape.indent);
    let dash = format!("{pad}-{}", " ".repeat(shape.dash_gap));
    let mut out = String::from(
        "# kube-apiserver\napiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver # mirror\nspec:\n  containers:\n",
    );
    if shape.sidecar {
        out.push_str("  - name: kms\n    command: [\"/kms\", \"--service-account-extend-token-expiration=false\"]\n");
    }
    out.push_str("  - name: kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.30.1\n");
    let items: Vec<String> = shape
        .items
        .iter()
        .map(|i| quoted(i.text, i.quote))
        .collect();
    let list_key = if shape.in_args {
        out.push_str("    command: [kube-apiserver]\n");
        "args"
    } else {
        "command"
    };
    let mut all = items.clone();
    if !shape.in_args {
        all.insert(0, "kube-apiserver".to_string());
    }
    if shape.flow {
        out.push_str(&format!("    {list_key}: [{}]\n", all.join(", ")));
    } else if all.is_empty() {
        out.push_str(&format!("    {list_key}: []\n"));
    } else {
        out.push_str(&format!("    {list_key}:\n"));
        let offset = usize::from(!shape.in_args);
        for (i, text) in all.iter().enumerate() {
            let meta = i.checked_sub(offset).map(|j| &shape.items[j]);
            if meta.is_some_and(|m| m.comment_line_before) {
                out.push_str(&format!("    {pad}# note\n"));
            }
            let comment = if meta.is_some_and(|m| m.comment) {
                "  # why"
            } else {
                ""
            };
            out.push_str(&format!("    {dash}{text}{comment}\n"));
        }
    }
    out.push_str("    name2: x\n");
    if !shape.final_newline {
        out.pop();
    }
    if shape.crlf {
        out = out.replace('\n', "\r\n");
    }
    out
}

/// Every line the edit touched must be a line of the flag (block lists), or the one line of the
/// flow list whose non-flag items are unchanged.
fn assert_minimal(old: &str, new: &str) -> Result<(), TestCaseError> {
    let diff = similar::TextDiff::from_lines(old, new);
    let changed: Vec<String> = diff
        .iter_all_changes()
        .filter(|c| c.tag() != similar::ChangeTag::Equal)
        .map(|c| c.value().trim_end().to_string())
        .collect();
    for line in &changed {
        let is_flag_line =
            line.contains(EXTEND_TOKEN_EXPIRATION) || line.contains("service_account_extend");
        let is_flow_line = line.contains('[');
        let emptied_block_list = line.trim() == "args:" || line.trim() == "args: []";
        if emptied_block_list {
            continue;
        }
        prop_assert!(
            is_flag_line || is_flow_line,
            "unexpected changed line {line:?}"
        );
        if is_flow_line {
            let others = |l: &str| -> Vec<String> {
                let inner = &l[l.find('[').map_or(0, |i| i + 1)..l.rfind(']').unwrap_or(l.len())];
                inner
                    .split(',')
                    .map(|s| s.trim().trim_matches(['[', ']', '"', '\'']).to_string())
                    .filter(|s| !s.is_empty())
                    .filter(|s| {
                        flags::split_flag(s).is_none_or(|(n, _)| n != EXTEND_TOKEN_EXPIRATION)
                    })
                    .collect()
            };
            let removed: Vec<_> = diff
                .iter_all_changes()
                .filter(|c| c.tag() == similar::ChangeTag::Delete)
                .collect();
            let added: Vec<_> = diff
                .iter_all_changes()
                .filter(|c| c.tag() == similar::ChangeTag::Insert)
                .collect();
            prop_assert_eq!(removed.len(), 1);
            prop_assert_eq!(added.len(), 1);
            prop_assert_eq!(
                others(removed[0].value().trim_end()),
                others(added[0].value().trim_end())
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn edits_are_minimal_idempotent_and_reversible(shape in shape(), value in any::<bool>()) {
        let text = render(&shape);
        let before = Manifest::parse(&text).unwrap().extend_tokens();

        let set = edit_extend_tokens(&text, Target::Set(value)).unwrap();
        prop_assert_eq!(&set.after.state, &FlagState::Explicit { value });
        if set.changed {
            prop_assert_eq!(set.after.occurrences.len(), 1);
        }
        assert_minimal(&text, &set.new_text)?;
        if shape.crlf {
            prop_assert_eq!(set.new_text.matches('\n').count(), set.new_text.matches("\r\n").count());
        }
        let again = edit_extend_tokens(&set.new_text, Target::Set(value)).unwrap();
        prop_assert!(!again.changed);

        let removed = edit_extend_tokens(&set.new_text, Target::Remove).unwrap();
        prop_assert!(removed.after.occurrences.is_empty());
        assert_minimal(&set.new_text, &removed.new_text)?;
        if before.occurrences.is_empty() {
            prop_assert_eq!(&removed.new_text, &text, "set then remove restores the original bytes");
        }
        prop_assert!(!edit_extend_tokens(&removed.new_text, Target::Remove).unwrap().changed);
    }

    #[test]
    fn arbitrary_text_never_panics_and_accepted_edits_are_proved(text in ".{0,300}") {
        check_any_input(&text);
    }

    #[test]
    fn mutated_manifests_never_panic(shape in shape(), at in any::<prop::sample::Index>(), junk in "[\\-\\[\\]:'\"#&*! \\t\\r\\n]{1,4}") {
        let mut text = render(&shape);
        let mut cut = at.index(text.len() + 1);
        while !text.is_char_boundary(cut) { cut -= 1; }
        text.insert_str(cut, &junk);
        check_any_input(&text);
    }
}
