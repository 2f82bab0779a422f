#!/usr/bin/env bash
# The operations material, checked before anything runs: shellcheck on every script, the Go
# helpers of the real-node tier and the kind rehearsal, `ruby -c` on the Vagrantfile, every YAML
# file parsed, the playbooks through `ansible-playbook --syntax-check` and `ansible-lint`. (The kind rehearsal
# itself runs at the end of tests/run.sh; its refusals are integration tests, `rehearsal_scripts`.)
# tests/run.sh installs the tools (shellcheck, ruby, ansible-core, ansible-lint) and runs this.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in shellcheck ruby ansible-playbook ansible-lint python3; do
  command -v "$tool" >/dev/null || { echo "tests/ops-checks.sh: $tool is missing: run bash tests/run.sh, which installs it" >&2; exit 1; }
done

echo "ops checks: shellcheck"
mapfile -t scripts < <(git ls-files '*.sh' .ci/run)
shellcheck "${scripts[@]}"

echo "ops checks: gofmt and go vet on the test tiers' Go helpers"
if command -v go >/dev/null || [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
  unformatted=$(gofmt -l tests/realnode tests/rehearsal)
  [ -z "$unformatted" ] || { echo "gofmt: not formatted: $unformatted" >&2; exit 1; }
  (cd tests/realnode && go vet ./...)
  (cd tests/rehearsal && go vet ./...)
fi

echo "ops checks: ruby -c vagrant/Vagrantfile, and the machines it defines"
ruby -c vagrant/Vagrantfile
expect_plan() { # CONTROL_PLANES EXPECTED
  local plan
  plan=$(CONTROL_PLANES=$1 ruby tests/vagrant-plan.rb vagrant/Vagrantfile)
  [ "$plan" = "$2" ] || { printf 'vagrant/Vagrantfile with CONTROL_PLANES=%s defines:\n%s\nnot:\n%s\n' "$1" "$plan" "$2" >&2; exit 1; }
}
expect_plan 1 "cp1 192.168.56.11: provision/common.sh 1.37.2 192.168.56.11; provision/control-plane.sh init 192.168.56.11 192.168.56.11:6443 1.37.2
worker1 192.168.56.21: provision/common.sh 1.37.2 192.168.56.21; provision/worker.sh"
expect_plan 3 "lb 192.168.56.10: provision/lb.sh 192.168.56.11 192.168.56.12 192.168.56.13
cp1 192.168.56.11: provision/common.sh 1.37.2 192.168.56.11; provision/control-plane.sh init 192.168.56.11 192.168.56.10:6443 1.37.2
cp2 192.168.56.12: provision/common.sh 1.37.2 192.168.56.12; provision/control-plane.sh join 192.168.56.12 192.168.56.10:6443 1.37.2
cp3 192.168.56.13: provision/common.sh 1.37.2 192.168.56.13; provision/control-plane.sh join 192.168.56.13 192.168.56.10:6443 1.37.2
worker1 192.168.56.21: provision/common.sh 1.37.2 192.168.56.21; provision/worker.sh"
if CONTROL_PLANES=2 ruby tests/vagrant-plan.rb vagrant/Vagrantfile >/dev/null 2>&1; then
  echo "vagrant/Vagrantfile accepts CONTROL_PLANES=2 (etcd needs an odd number)" >&2
  exit 1
fi

echo "ops checks: YAML"
# Not the manifest fixtures (many are broken on purpose) nor the simulator's manifest template
# ({{PORT}} placeholders); everything else must parse.
mapfile -t yamls < <(git ls-files '*.yml' '*.yaml' ':!:tests/fixtures' ':!:sim/src/manifest.yaml')
"$(dirname "$(command -v ansible-playbook)")/python" - "${yamls[@]}" <<'PY'
import sys, yaml
for path in sys.argv[1:]:
    with open(path) as f:
        try:
            list(yaml.safe_load_all(f))
        except yaml.YAMLError as e:
            sys.exit(f"{path}: not valid YAML: {e}")
print(f"  {len(sys.argv) - 1} files parse")
PY

echo "ops checks: ansible-playbook --syntax-check"
for playbook in playbooks/*.yml; do
  ANSIBLE_NOCOLOR=1 ansible-playbook --syntax-check -i playbooks/inventory.example.ini "$playbook" >/dev/null
done

echo "ops checks: ansible-lint"
(cd playbooks && ansible-lint -c .ansible-lint --nocolor .)
echo "ops checks passed"
