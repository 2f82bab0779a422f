# shellcheck shell=bash
# logs, binary, reason and the node functions are the sourcing script's:
# shellcheck disable=SC2154
# The break-glass rehearsal, defined once for every way of getting nodes (kind: tests/rehearsal/
# kind.sh; Vagrant: vagrant/rehearse.sh). Sourced by them, after they define how to reach a node:
#
#   node_names                 the control-plane nodes, one per line, in roll-out order
#   on_node NAME CMD...        runs CMD as root on the node, as over SSH (stdin passed)
#   copy_to_node FILE NAME DEST   puts a local file on the node (root's, mode 0755)
#   terminal_on_node NAME CMD...  prints the argv (one per line) that runs CMD as root on the node
#                              in a pseudo-terminal (docker exec -it, ssh -t)
#   stage_rejection NAME on|off   the node's kube-apiserver image becomes one that refuses
#                              --service-account-extend-token-expiration=false (and is the real
#                              apiserver otherwise), or the real one again; return 2 where the
#                              driver cannot stage it (the step is then reported as skipped)
#   inventory                  an Ansible inventory of the nodes (group control_plane), as root
#
# and set: logs (a directory for each step's log), binary (the static kubeadm-recover), reason.
# Each step prints one line (`ok`, `skip` or `FAILED`, its time and what it proved); its whole
# output goes to $logs/NN-<step>.log, and a failure names that file and shows its end.

rehearsal_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
step_number=0

# step TITLE FUNCTION ARGS...: runs FUNCTION (its stdout and stderr to the step's log); its last
# line of the file $logs/.detail is the line's detail.
step() {
  local title=$1 started=$SECONDS status=0 log
  shift
  step_number=$((step_number + 1))
  log=$logs/$(printf '%02d' "$step_number")-$1.log
  : >"$logs/.detail"
  # In a subshell of its own with errexit, started asynchronously: a `cmd || status=$?` here
  # would turn errexit off inside the step.
  (
    set -eo pipefail
    "$@"
  ) >"$log" 2>&1 </dev/null &
  wait $! || status=$?
  local detail
  detail=$(tail -n1 "$logs/.detail")
  case $status in
    0) printf '  ok    %-58s %4ss  %s\n' "$title" $((SECONDS - started)) "$detail" ;;
    2) printf '  skip  %-58s %4ss  %s\n' "$title" $((SECONDS - started)) "$detail" ;;
    *)
      printf '  FAILED  %s (after %ss): %s\n' "$title" $((SECONDS - started)) "$detail"
      echo "  its log: $log"
      tail -n 15 "$log" | sed 's/^/    | /'
      return 1
      ;;
  esac
}
detail() { echo "$*" >>"$logs/.detail"; }
fail() {
  detail "$*"
  echo "FAILED: $*" >&2
  exit 1
}
kr() {
  local node=$1
  shift
  on_node "$node" /usr/local/sbin/kubeadm-recover "$@"
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
first_node() { node_names | head -n1; }

# The running kube-apiserver's value of the flag, from its command line (/proc): the truth,
# whatever the mirror pod still says.
running_flag() {
  # shellcheck disable=SC2016 # expanded on the node
  on_node "$1" sh -c 'tr "\0" "\n" </proc/$(pgrep -xo kube-apiserver)/cmdline' |
    sed -n 's/^--service-account-extend-token-expiration=//p' | tail -n1 | grep . || echo absent
}

install_binary() {
  local node
  for node in $(node_names); do
    copy_to_node "$binary" "$node" /usr/local/sbin/kubeadm-recover
    kr "$node" --version
  done
  detail "$(kr "$(first_node)" --version) on $(node_names | tr '\n' ' ')"
}

read_status() {
  local node status
  node=$(first_node)
  kr "$node" status
  status=$(kr "$node" status -o json)
  [ "$(json 'd["apiserver"]["health"]' <<<"$status")" = ok ] || fail "the apiserver is not healthy: $status"
  detail "kube-apiserver pid $(json 'd["apiserver"]["pid"]' <<<"$status") healthy; $(json 'len(d["credentials"])' <<<"$status") admin credentials"
}

lock_out() {
  local node
  for node in $(node_names); do
    on_node "$node" bash -s -- / <"$rehearsal_dir/expire-admin-conf.sh"
    if on_node "$node" kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes; then
      fail "admin.conf on $node still works after it was expired"
    fi
  done
  [ "$(kr "$(first_node)" status -o json | json 'd["credentials"][0]["expired"]')" = True ] ||
    fail "status does not say admin.conf expired"
  detail "admin.conf expired on $(node_names | wc -l) node(s): kubectl refused"
}

regenerate() {
  local node out
  node=$(first_node)
  out=$(kr "$node" admin-conf regenerate --yes --reason "$reason" -o json)
  echo "$out"
  [ "$(json 'd["verified"]' <<<"$out")" = True ] || fail "regenerate did not prove the new admin.conf"
  admin_works "$node" || fail "kubectl with the new admin.conf is not kubernetes-admin"
  detail "proved; kubectl auth whoami: kubernetes-admin"
}

enable() {
  local node out
  node=$(first_node)
  out=$(kr "$node" extend-tokens enable --yes --reason "$reason" -o json)
  echo "$out"
  [ "$(json 'd["restart"]' <<<"$out")" = proved ] || fail "the restart was not proved"
  [ "$(running_flag "$node")" = true ] || fail "the running apiserver has the flag $(running_flag "$node")"
  detail "proved; the running kube-apiserver has --service-account-extend-token-expiration=true"
}

revert_change() {
  local node out
  node=$(first_node)
  out=$(kr "$node" revert --yes --reason "$reason" --accept-stale-tokens -o json)
  echo "$out"
  [ "$(json 'd["restart"]' <<<"$out")" = proved ] || fail "the restart was not proved"
  [ "$(running_flag "$node")" = absent ] || fail "after revert the running apiserver has the flag $(running_flag "$node")"
  detail "proved; the flag is gone from the running kube-apiserver"
}

# Whether kubectl on the node, with admin.conf, is kubernetes-admin (a SelfSubjectReview).
admin_works() {
  [ "$(on_node "$1" kubectl --kubeconfig /etc/kubernetes/admin.conf auth whoami -o jsonpath='{.status.userInfo.username}')" = kubernetes-admin ]
}

manifest_sum() { on_node "$1" sha256sum /etc/kubernetes/manifests/kube-apiserver.yaml | cut -c1-16; }

rejected_change() {
  local node before code=0 out status
  node=$(first_node)
  stage_rejection "$node" on || {
    local why=$?
    [ $why = 2 ] && detail "this way of getting nodes cannot stage a rejecting apiserver image"
    return $why
  }
  before=$(manifest_sum "$node")
  out=$(kr "$node" extend-tokens disable --yes --accept-stale-tokens --reason "$reason" 2>&1) || code=$?
  echo "$out"
  stage_rejection "$node" off
  [ "$code" = 1 ] || fail "exit $code, not 1"
  grep -q "Rolled back" <<<"$out" || fail "no rollback reported"
  [ "$(manifest_sum "$node")" = "$before" ] || fail "the manifest is not the one before the change"
  status=$(kr "$node" status -o json)
  [ "$(json 'd["apiserver"]["health"]' <<<"$status")" = ok ] || fail "the apiserver is not healthy after the rollback"
  detail "exit 1, rolled back: $(grep -m1 -o 'keeps exiting ([0-9]* attempts exited\|did not [^.;]*' <<<"$out" | sed 's/exited$/exited)/' || echo rejected); manifest byte-identical, apiserver healthy"
}

guide_at_a_terminal() {
  local node argv=()
  node=$(first_node)
  on_node "$node" bash -s -- / <"$rehearsal_dir/expire-admin-conf.sh"
  mapfile -t argv < <(terminal_on_node "$node" /usr/local/sbin/kubeadm-recover guide)
  python3 "$rehearsal_dir/guide.py" "$reason" "${argv[@]}" || fail "guide did not finish with exit 0"
  admin_works "$node" || fail "after the guide, kubectl with admin.conf is not kubernetes-admin"
  detail "every proposed step done at the prompt; admin.conf works again"
}

certs_check() {
  local node out code=0
  node=$(first_node)
  out=$(kr "$node" certs check -o json) || code=$?
  kr "$node" certs check || true
  [ "$code" = 0 ] || fail "certs check exit $code"
  detail "$(json 'len(d["certificates"])' <<<"$out") certificates, $(json 'len(d["problems"])' <<<"$out") problems"
}

journal() {
  local node
  node=$(first_node)
  kr "$node" journal list
  detail "$(kr "$node" journal list -o json | json 'len(d["sessions"])') sessions recorded on $node"
}

# --- The playbooks, over SSH, on every control-plane node -------------------------------

play() {
  local playbook=$1
  shift
  ansible-playbook -i "$(inventory)" "$rehearsal_dir/../../playbooks/$playbook" \
    -e "kubeadm_recover_reason='$reason'" -e kubeadm_recover_binary="$binary" "$@"
}

flag_everywhere() {
  local node
  for node in $(node_names); do
    echo "$node $(running_flag "$node")"
  done
}

play_status() {
  play status.yml
  detail "$(node_names | wc -l) node(s) reported healthy"
}

play_regenerate() {
  lock_out >/dev/null
  play regenerate-admin.yml -e kubeadm_recover_fetch_dest="$logs/fetched"
  local node
  for node in $(node_names); do
    admin_works "$node" || fail "admin.conf on $node does not work after regenerate-admin.yml"
  done
  detail "admin.conf re-issued and proved on every node"
}

play_enable() {
  play extend-tokens.yml -e state=enabled
  flag_everywhere
  [ "$(flag_everywhere | grep -vc ' true$')" = 0 ] || fail "not every apiserver runs with the flag: $(flag_everywhere | tr '\n' ';')"
  detail "one node at a time; every kube-apiserver runs with the flag on"
}

play_revert() {
  play revert.yml -e kubeadm_recover_accept_stale_tokens=true
  [ "$(flag_everywhere | grep -vc ' absent$')" = 0 ] || fail "the flag is still on: $(flag_everywhere | tr '\n' ';')"
  detail "every node reverted and proved"
}

# The first node refuses the change: the play stops there, and the nodes after it are untouched.
play_stops_at_the_first_failure() {
  local first others=() sums_before sums_after code=0 node
  first=$(first_node)
  mapfile -t others < <(node_names | tail -n +2)
  [ ${#others[@]} -gt 0 ] || {
    detail "one node: nothing comes after the first"
    return 2
  }
  stage_rejection "$first" on || {
    local why=$?
    [ $why = 2 ] && detail "this way of getting nodes cannot stage a rejecting apiserver image"
    return $why
  }
  sums_before=$(for node in $(node_names); do manifest_sum "$node"; done)
  play extend-tokens.yml -e state=disabled || code=$?
  stage_rejection "$first" off
  sums_after=$(for node in $(node_names); do manifest_sum "$node"; done)
  [ "$code" != 0 ] || fail "the play succeeded on a node that refuses the change"
  [ "$sums_before" = "$sums_after" ] || fail "a manifest changed: $sums_before -> $sums_after"
  for node in "${others[@]}"; do
    if [ "$(kr "$node" journal list -o json | json 'any("disable" in s["command"] for s in d["sessions"])')" = True ]; then
      fail "$node was changed after $first failed"
    fi
  done
  [ "$(kr "$first" status -o json | json 'd["apiserver"]["health"]')" = ok ] || fail "$first is not healthy after its rollback"
  detail "$first rolled back, the play stopped; ${others[*]} untouched"
}

# --- The rehearsals: what each way of getting nodes runs -------------------------------------

# The break-glass flow on the first node, one command at a time, as an operator over SSH.
rehearse_on_one_node() {
  step "status" read_status &&
    step "admin.conf expires: kubectl is locked out" lock_out &&
    step "admin-conf regenerate" regenerate &&
    step "extend-tokens enable" enable &&
    step "revert (after the migration)" revert_change &&
    step "a change the new apiserver rejects is rolled back" rejected_change &&
    step "guide at a terminal (admin.conf expired again)" guide_at_a_terminal &&
    step "certs check" certs_check &&
    step "journal list" journal
}

# The playbooks on every control-plane node, serially.
rehearse_the_playbooks() {
  if ! command -v ansible-playbook >/dev/null; then
    step "the playbooks" without_ansible
    return
  fi
  step "status.yml" play_status &&
    step "regenerate-admin.yml (admin.conf expired on every node)" play_regenerate &&
    step "extend-tokens.yml state=enabled, one node at a time" play_enable &&
    step "revert.yml" play_revert &&
    step "a play stops at the first node that fails" play_stops_at_the_first_failure
}
without_ansible() {
  detail "ansible-playbook is not installed (pip install ansible-core)"
  return 2
}
