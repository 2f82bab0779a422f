module kubeadm-recover/realnode

go 1.26
