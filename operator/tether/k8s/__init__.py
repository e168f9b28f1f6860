"""tether.k8s"""
