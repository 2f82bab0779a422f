#!/usr/bin/env bash
# The operations material CI cannot run (it has no hypervisor and no Docker engine), checked as
# far as this machine allows: shellcheck on every script, `ruby -c` on the Vagrantfile, every YAML
# file parsed, the playbooks through `ansible-playbook --syntax-check` and `ansible-lint`, and the
# kind rehearsal's preflight refusal (in the integration tests, `rehearsal_scripts`).
# tests/run.sh installs the tools (shellcheck, ruby, ansible-core, ansible-lint) and runs this.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in shellcheck ruby ansible-playbook ansible-lint python3; do
  command -v "$tool" >/dev/null || { echo "tests/ops-checks.sh: $tool is missing: run bash tests/run.sh, which installs it" >&2; exit 1; }
done

echo "ops checks: shellcheck"
mapfile -t scripts < <(git ls-files '*.sh' .ci/run)
shellcheck "${scripts[@]}"

echo "ops checks: ruby -c vagrant/Vagrantfile"
ruby -c vagrant/Vagrantfile

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
