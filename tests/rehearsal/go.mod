module kubeadm-recover/rehearsal

go 1.26
