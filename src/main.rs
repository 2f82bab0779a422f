fn main() {
    std::process::exit(kubeadm_recover::main_exit_code());
}
