#!/bin/sh
# Written by `keepvip convert kube-vip --adopt`: the keepvip annotations of each Service.
# Equivalent to: kubectl apply --server-side --field-manager keepvip-convert -f services.yaml
set -eu
kubectl annotate --overwrite --namespace default service/clash-a keepvip.io/load-balancer-ips=198.18.0.105
kubectl annotate --overwrite --namespace default service/clash-b keepvip.io/load-balancer-ips=198.18.0.105
