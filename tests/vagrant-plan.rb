# Loads vagrant/Vagrantfile with a stand-in for Vagrant (CI has no Vagrant, no hypervisor) and
# prints what it would build: each machine, its IP and its provisioning scripts with their
# arguments, and checks that every script it names exists. tests/ops-checks.sh runs it for
# each layout.
#   ruby tests/vagrant-plan.rb vagrant/Vagrantfile
class Recorder
  def initialize(machine = nil, machines = nil)
    @machine = machine
    @machines = machines
  end

  def vm
    self
  end

  def define(name)
    machine = { name: name, ip: nil, scripts: [] }
    @machines << machine
    yield Recorder.new(machine, @machines)
  end

  def network(_type, ip:)
    @machine[:ip] = ip
  end

  def provision(_type, path:, args: [], env: {})
    raise "#{path} does not exist" unless File.exist?(File.join(File.dirname(VAGRANTFILE), path))

    settings = env.reject { |_k, v| v.to_s.empty? }.map { |k, v| "#{k}=#{v}" }
    @machine[:scripts] << (settings + ["#{path} #{args.join(' ')}".strip]).join(' ')
  end

  def hostname=(value)
    @machine[:hostname] = value if @machine.is_a?(Hash)
  end

  def provider(_name)
    yield Recorder.new
  end

  # box, synced_folder, memory, cpus: settings that shape no machine.
  def method_missing(_name, *_args, **_opts); end

  def respond_to_missing?(*)
    true
  end
end

module Vagrant
  MACHINES = []

  def self.configure(_version)
    yield Recorder.new(nil, MACHINES)
  end
end

VAGRANTFILE = ARGV.fetch(0)
load VAGRANTFILE
Vagrant::MACHINES.each do |m|
  raise "#{m[:name]}: hostname #{m[:hostname].inspect}" unless m[:hostname] == m[:name]

  puts "#{m[:name]} #{m[:ip]}: #{m[:scripts].join('; ')}"
end
