"""tether.handlers"""
