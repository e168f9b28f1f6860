"""tether: session affinity for Kubernetes services without a service mesh.

Layers (imports point down only, enforced by import-linter, see pyproject.toml):
cli → handlers | gateway | lab → k8s → reconcile → hashing → models.
"""

__version__ = "0.1.0"
