"""TLS termination for the gateway's TLS listener: certificates (``certs``) and where they come
from (``sources``: a directory, or ``kubernetes.io/tls`` Secrets), hot-reloaded."""
