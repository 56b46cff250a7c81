#!/bin/sh
# Written by `keepvip convert cilium --adopt`: the keepvip annotations of each Service.
# Equivalent to: kubectl apply --server-side --field-manager keepvip-convert -f services.yaml
set -eu
kubectl annotate --overwrite --namespace edge service/gateway keepvip.io/load-balancer-ips=198.18.0.103 keepvip.io/sharing-key=edge
kubectl annotate --overwrite --namespace edge service/gateway-quic keepvip.io/sharing-key=edge keepvip.io/load-balancer-ips=198.18.0.103
kubectl annotate --overwrite --namespace edge service/dual keepvip.io/load-balancer-ips=198.18.0.105,2001:db8:31::5
kubectl annotate --overwrite --namespace edge service/from-retired keepvip.io/load-balancer-ips=198.18.5.3
