"""tether.hashing"""
