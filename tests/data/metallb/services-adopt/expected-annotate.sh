#!/bin/sh
# Written by `keepvip convert metallb --adopt`: the keepvip annotations of each Service.
# Equivalent to: kubectl apply --server-side --field-manager keepvip-convert -f services.yaml
set -eu
kubectl annotate --overwrite --namespace ingress-nginx service/ingress-nginx-controller keepvip.io/load-balancer-ips=198.18.0.107
kubectl annotate --overwrite --namespace dns service/dns-tcp keepvip.io/sharing-key=dns keepvip.io/load-balancer-ips=198.18.0.110
kubectl annotate --overwrite --namespace dns service/dns-udp keepvip.io/sharing-key=dns keepvip.io/load-balancer-ips=198.18.0.110
kubectl annotate --overwrite --namespace shop service/payments keepvip.io/pool=expensive keepvip.io/load-balancer-ips=198.18.0.121
