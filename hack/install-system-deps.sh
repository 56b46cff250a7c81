#!/usr/bin/env bash
# Installs the Debian packages the test tiers and the demo use, once; a no-op when present.
#   keepalived          the interoperability peer (tests/netns, bench/)
#   tshark tcpdump      decode what keepvip sends
#   iputils-ping iproute2  namespaces, veths, bridges
#   golang-go etcd-server dpkg-dev  the local control plane (hack/build-k8s.sh)
#   iptables conntrack  kube-proxy (iptables mode) inside the local cluster's node namespaces
#   tcpreplay           bench/flood.py's sender (100,000 spoofed adverts/s from a pcap)
#   prometheus          for /usr/bin/promtool: `promtool test rules` on the chart's alerts (tests/alerts)
set -euo pipefail
pkgs=(keepalived tshark tcpdump iputils-ping iproute2 golang-go etcd-server dpkg-dev openssl curl unzip procps iptables conntrack tcpreplay prometheus)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "keepvip: these Debian packages are needed and only root can install them: ${missing[*]}" >&2
  exit 1
fi
echo "keepvip: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# tshark asks whether non-root users may capture; answer for it.
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
