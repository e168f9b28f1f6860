# tether's local Python base (no registry): Debian's python3 on a debootstrapped Debian image.
# Built by `tether kind build` as tether-kind/python; deploy/Dockerfile takes it as BASE_IMAGE.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
# The machine's trust store, so pip can reach PyPI from `docker build` wherever the machine's
# own CA bundle is needed; update-ca-certificates keeps it through later apt runs.
COPY host-ca-bundle.crt /usr/local/share/ca-certificates/tether-host-bundle.crt
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 ca-certificates \
    && update-ca-certificates \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \
       /usr/share/locale/* /var/cache/debconf/*-old /var/log/*
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
