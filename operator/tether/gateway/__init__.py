"""tether.gateway"""
