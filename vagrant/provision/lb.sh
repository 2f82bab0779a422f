#!/usr/bin/env bash
# The load balancer in front of the control-plane nodes (CONTROL_PLANES=3): HAProxy, TCP on
# 6443, with a health check on each apiserver, so that a node whose apiserver restarts is taken
# out of rotation, as in production.
#   lb.sh CP_IP...
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: lb.sh CP_IP..." >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq haproxy
{
  cat <<CONF
global
    log /dev/log local0
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend kube-apiserver
    bind *:6443
    default_backend control-plane
backend control-plane
    option httpchk GET /readyz
    http-check expect status 200
    default-server check check-ssl verify none inter 2s fall 3 rise 2
CONF
  i=1
  for ip in "$@"; do
    echo "    server cp$i $ip:6443"
    i=$((i + 1))
  done
} >/etc/haproxy/haproxy.cfg
systemctl restart haproxy
