# kube-proxy on the kind base image (it needs iptables, ip6tables and conntrack from Debian).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY kube-proxy /usr/local/bin/kube-proxy
ENTRYPOINT ["/usr/local/bin/kube-proxy"]
