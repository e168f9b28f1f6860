"""tether.reconcile"""
