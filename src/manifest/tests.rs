use super::*;

const KUBEADM_130: &str = include_str!("../../tests/fixtures/manifests/kubeadm-1.30.yaml");
const KUBEADM_118: &str = include_str!("../../tests/fixtures/manifests/kubeadm-1.18.yaml");
const HAND_EDITED: &str = include_str!("../../tests/fixtures/manifests/hand-edited.yaml");
const ARGS_FLOW: &str = include_str!("../../tests/fixtures/manifests/args-flow.yaml");
const POD_JSON: &str = include_str!("../../tests/fixtures/manifests/pod.json");

/// The lines that differ, as (removed, added): the edit must touch only the flag's item.
fn changed_lines(old: &str, new: &str) -> (Vec<String>, Vec<String>) {
    let diff = similar::TextDiff::from_lines(old, new);
    let mut removed = Vec::new();
    let mut added = Vec::new();
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Delete => removed.push(change.value().to_string()),
            similar::ChangeTag::Insert => added.push(change.value().to_string()),
            similar::ChangeTag::Equal => {}
        }
    }
    (removed, added)
}

fn state(text: &str) -> FlagState {
    Manifest::parse(text).unwrap().extend_tokens().state
}

#[test]
fn kubeadm_manifest_enable_inserts_one_line_in_sorted_position() {
    let edit = edit_extend_tokens(KUBEADM_130, Target::Set(true)).unwrap();
    assert!(edit.changed);
    let (removed, added) = changed_lines(KUBEADM_130, &edit.new_text);
    assert!(removed.is_empty());
    assert_eq!(
        added,
        vec!["    - --service-account-extend-token-expiration=true\n"]
    );
    let before_issuer = "    - --secure-port=6443\n    - --service-account-extend-token-expiration=true\n    - --service-account-issuer=";
    assert!(edit.new_text.contains(before_issuer));
    assert_eq!(
        edit.before.state,
        FlagState::Absent {
            default: Some(true)
        }
    );
    assert_eq!(edit.after.state, FlagState::Explicit { value: true });
}

#[test]
fn disable_then_remove_round_trips_to_the_original_bytes() {
    let disabled = edit_extend_tokens(KUBEADM_130, Target::Set(false)).unwrap();
    let enabled = edit_extend_tokens(&disabled.new_text, Target::Set(true)).unwrap();
    let (removed, added) = changed_lines(&disabled.new_text, &enabled.new_text);
    assert_eq!(
        removed,
        vec!["    - --service-account-extend-token-expiration=false\n"]
    );
    assert_eq!(
        added,
        vec!["    - --service-account-extend-token-expiration=true\n"]
    );
    let reverted = edit_extend_tokens(&enabled.new_text, Target::Remove).unwrap();
    assert_eq!(reverted.new_text, KUBEADM_130);
}

#[test]
fn setting_the_value_it_already_has_is_a_no_op() {
    let enabled = edit_extend_tokens(KUBEADM_130, Target::Set(true)).unwrap();
    let again = edit_extend_tokens(&enabled.new_text, Target::Set(true)).unwrap();
    assert!(!again.changed);
    assert_eq!(again.new_text, enabled.new_text);
    let absent = edit_extend_tokens(KUBEADM_130, Target::Remove).unwrap();
    assert!(!absent.changed);
}

#[test]
fn absent_flag_reports_the_default_for_the_image_version() {
    assert_eq!(
        state(KUBEADM_130),
        FlagState::Absent {
            default: Some(true)
        }
    );
    assert_eq!(
        state(KUBEADM_118),
        FlagState::Absent {
            default: Some(false)
        }
    );
    let untagged = KUBEADM_130.replace("kube-apiserver:v1.30.2", "kube-apiserver:latest");
    assert_eq!(state(&untagged), FlagState::Absent { default: None });
}

#[test]
fn image_versions_parse_with_registry_ports_and_digests() {
    assert_eq!(
        image_version("registry.k8s.io/kube-apiserver:v1.29.3"),
        Some((1, 29, 3))
    );
    assert_eq!(
        image_version("localhost:5000/kube-apiserver:v1.30.0-rc.1"),
        Some((1, 30, 0))
    );
    assert_eq!(
        image_version("k8s.gcr.io/kube-apiserver:v1.19.1@sha256:ab"),
        Some((1, 19, 1))
    );
    assert_eq!(image_version("localhost:5000/kube-apiserver"), None);
    assert_eq!(image_version("kube-apiserver@sha256:ab"), None);
}

#[test]
fn hand_edited_crlf_manifest_keeps_comments_quotes_and_line_endings() {
    let m = Manifest::parse(HAND_EDITED).unwrap();
    assert_eq!(m.container_index, 1, "the sidecar is not the apiserver");
    let tokens = m.extend_tokens();
    assert_eq!(tokens.occurrences.len(), 2);
    assert_eq!(
        tokens.state,
        FlagState::Explicit { value: true },
        "last (bare) occurrence wins"
    );

    let edit = edit_extend_tokens(HAND_EDITED, Target::Set(false)).unwrap();
    assert!(edit.notes[0].contains("2 times"), "{:?}", edit.notes);
    let (removed, added) = changed_lines(HAND_EDITED, &edit.new_text);
    assert_eq!(
        removed,
        vec![
            "        - --service-account-extend-token-expiration=False  # CIS 1.2.30\r\n",
            "        - --service-account-extend-token-expiration   # added at 3am, bare means true\r\n",
        ]
    );
    assert_eq!(
        added,
        vec![
            "        - --service-account-extend-token-expiration=false   # added at 3am, bare means true\r\n"
        ]
    );
    assert_eq!(
        edit.new_text.matches('\n').count(),
        edit.new_text.matches("\r\n").count()
    );
    assert_eq!(state(&edit.new_text), FlagState::Explicit { value: false });
}

#[test]
fn flow_args_list_gets_a_quoted_item_with_the_same_separator() {
    let edit = edit_extend_tokens(ARGS_FLOW, Target::Set(false)).unwrap();
    assert!(edit.new_text.contains(
        r#"args: ["--advertise-address=127.0.0.1", "--secure-port=6443", "--service-account-extend-token-expiration=false", "--tls-cert-file"#
    ));
    let back = edit_extend_tokens(&edit.new_text, Target::Remove).unwrap();
    assert_eq!(back.new_text, ARGS_FLOW);
}

#[test]
fn json_manifest_stays_json() {
    let edit = edit_extend_tokens(POD_JSON, Target::Set(true)).unwrap();
    let value: serde_json::Value = serde_json::from_str(&edit.new_text).unwrap();
    assert_eq!(
        value["spec"]["containers"][0]["command"][2],
        "--service-account-extend-token-expiration=true"
    );
    assert_eq!(
        edit_extend_tokens(&edit.new_text, Target::Remove)
            .unwrap()
            .new_text,
        POD_JSON
    );
}

#[test]
fn flow_deletion_never_eats_a_comment_or_a_neighbour() {
    let text = "kind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    command: [\n      kube-apiserver,  # program\n      --service-account-extend-token-expiration=1,\n      --service_account_extend_token_expiration=t,\n      --z=1 # last\n    ]\n";
    let edit = edit_extend_tokens(text, Target::Remove).unwrap();
    assert!(edit.new_text.contains("# program"));
    assert!(edit.new_text.contains("--z=1 # last"));
    assert!(!edit.new_text.contains("token"));
    let set = edit_extend_tokens(text, Target::Set(false)).unwrap();
    assert!(
        set.new_text
            .contains("      --service-account-extend-token-expiration=false,\n      --z=1")
    );
}

#[test]
fn non_indented_and_indented_lists_and_a_file_without_final_newline() {
    for text in [
        "kind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    command:\n    - kube-apiserver\n    - --secure-port=6443",
        "kind: Pod\nspec:\n  containers:\n    - name: kube-apiserver\n      command:\n          - kube-apiserver\n          - --secure-port=6443",
    ] {
        let edit = edit_extend_tokens(text, Target::Set(true)).unwrap();
        assert_eq!(state(&edit.new_text), FlagState::Explicit { value: true });
        let last = edit.new_text.lines().last().unwrap();
        assert!(
            last.ends_with("- --service-account-extend-token-expiration=true"),
            "{last}"
        );
        assert!(last.starts_with(
            &text.lines().last().unwrap()[..text.lines().last().unwrap().find('-').unwrap()]
        ));
        assert_eq!(
            edit_extend_tokens(&edit.new_text, Target::Remove)
                .unwrap()
                .new_text,
            text
        );
    }
}

#[test]
fn invalid_value_is_reported_and_can_be_fixed() {
    let text = KUBEADM_130.replace(
        "    - --secure-port=6443\n",
        "    - --secure-port=6443\n    - --service-account-extend-token-expiration=yes\n",
    );
    assert_eq!(
        state(&text),
        FlagState::Invalid {
            value: "yes".into()
        }
    );
    let edit = edit_extend_tokens(&text, Target::Set(true)).unwrap();
    assert_eq!(
        edit.new_text,
        edit_extend_tokens(KUBEADM_130, Target::Set(true))
            .unwrap()
            .new_text
    );
}

#[test]
fn args_only_container_without_command_counts_every_arg() {
    let text = "kind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    args:\n    - --service-account-extend-token-expiration\n";
    assert_eq!(state(text), FlagState::Explicit { value: true });
    let edit = edit_extend_tokens(text, Target::Set(false)).unwrap();
    assert!(
        edit.new_text
            .ends_with("    - --service-account-extend-token-expiration=false\n")
    );
}

#[test]
fn container_found_by_command_when_not_named() {
    let text = "kind: Pod\nspec:\n  containers:\n  - name: sidecar\n    command: [sleep, --x]\n  - name: api\n    command: [/usr/local/bin/kube-apiserver, --secure-port=1]\n";
    let m = Manifest::parse(text).unwrap();
    assert_eq!(m.container_index, 1);
    assert_eq!(m.flag("secure-port").as_deref(), Some("1"));
}

fn error(text: &str) -> ManifestError {
    Manifest::parse(text).unwrap_err()
}

#[test]
fn broken_manifests_are_refused_with_line_and_column() {
    assert_eq!(error("").kind, ErrorKind::Empty);
    assert_eq!(error("# only a comment\n\n").kind, ErrorKind::Empty);

    let e = error("kind: Pod\nspec:\n  containers: [\n");
    assert!(matches!(e.kind, ErrorKind::InvalidYaml(_)), "{e}");
    assert!(e.line.is_some());

    let e = error("kind: Pod\nspec:\n\tcontainers: []\n");
    assert_eq!(
        (e.kind.clone(), e.line, e.col),
        (ErrorKind::TabIndentation, Some(3), Some(1))
    );
    assert!(e.to_string().starts_with("line 3, column 1: a tab"), "{e}");

    let e = error("kind: Pod\n---\nkind: Pod\n");
    assert_eq!((e.kind, e.line), (ErrorKind::MultipleDocuments, Some(2)));

    let e = error("apiVersion: v1\nkind: Deployment\n");
    assert_eq!(
        (e.kind, e.line),
        (ErrorKind::NotAPod("Deployment".into()), Some(2))
    );

    let e = error("kind: Pod\nspec:\n  containers:\n  - name: etcd\n    command: [etcd]\n");
    assert_eq!(
        (e.kind, e.line),
        (
            ErrorKind::NoApiserverContainer(vec!["etcd".into()]),
            Some(3)
        )
    );
}

#[test]
fn anchors_aliases_and_tags_in_the_argument_list_are_refused() {
    for (text, line) in [
        (
            "kind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    command:\n    - kube-apiserver\n    - &a --x=1\n",
            7,
        ),
        (
            "x: &a --y\nkind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    command:\n    - kube-apiserver\n    - *a\n",
            8,
        ),
        (
            "kind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    command:\n    - kube-apiserver\n    - !!str --x\n",
            7,
        ),
        (
            "kind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    command: &cmd\n    - kube-apiserver\n",
            5,
        ),
        (
            "kind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    command:\n    - kube-apiserver\n    - |\n      --x\n",
            8,
        ),
    ] {
        let e = error(text);
        assert!(matches!(e.kind, ErrorKind::UnsupportedArgument(_)), "{e}");
        assert_eq!(e.line, Some(line), "{e}");
    }
}

#[test]
fn anchors_elsewhere_in_the_pod_are_fine_and_survive_the_edit() {
    let text = "kind: Pod\nmetadata:\n  labels: &l {tier: control-plane}\nspec:\n  containers:\n  - name: kube-apiserver\n    command:\n    - kube-apiserver\n    env: [{name: L, value: *l}]\n";
    // `value: *l` is a mapping: an odd pod, but the edit must leave it exactly as it is.
    let edit = edit_extend_tokens(text, Target::Set(true)).unwrap();
    assert!(edit.new_text.contains("labels: &l {tier: control-plane}"));
    assert!(edit.new_text.contains("env: [{name: L, value: *l}]"));
}

fn cannot_tell(text: &str) -> String {
    match Manifest::parse(text) {
        Err(ManifestError {
            kind: ErrorKind::CannotTell(why),
            line: Some(_),
            ..
        }) => why,
        other => panic!("expected CannotTell with a line, got {other:?}"),
    }
}

#[test]
fn manifests_the_kubelet_reads_differently_are_cannot_tell_never_a_default() {
    // A merge key that supplies the flag from an anchor elsewhere.
    let merged = "base: &base\n  args:\n  - --service-account-extend-token-expiration=false\napiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\nspec:\n  containers:\n  - name: kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.30.2\n    <<: *base\n";
    assert!(cannot_tell(merged).contains("merge key"));
    // `command` twice: the kubelet takes the last one.
    let twice = KUBEADM_130.replacen(
        "    name: kube-apiserver\n",
        "    name: kube-apiserver\n    command:\n    - kube-apiserver\n    - --service-account-extend-token-expiration=false\n",
        1,
    );
    assert!(cannot_tell(&twice).contains("`command` is given twice"));
    // A shell wrapper: the real arguments are inside a string.
    let shell = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\nspec:\n  containers:\n  - name: kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.30.2\n    command: [/bin/sh, -c, \"exec kube-apiserver --service-account-extend-token-expiration=false\"]\n";
    assert!(cannot_tell(shell).contains("/bin/sh"));
    // And so no edit is made to any of them.
    for text in [merged, &twice, shell] {
        assert!(edit_extend_tokens(text, Target::Set(true)).is_err());
    }
}

#[test]
fn cr_only_line_endings_are_named_as_such() {
    let text = KUBEADM_130.replace('\n', "\r");
    let err = Manifest::parse(&text).unwrap_err();
    assert_eq!(err.kind, ErrorKind::CrOnlyLineEndings);
    assert_eq!((err.line, err.col), (Some(1), Some(15)));
    assert!(err.hint().contains("LF"));
}
