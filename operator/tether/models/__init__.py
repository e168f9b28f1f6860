"""tether.models"""
