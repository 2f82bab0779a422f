fn main() {
    std::process::exit(kubeadm_recover::run());
}
