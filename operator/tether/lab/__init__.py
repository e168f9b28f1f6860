"""tether.lab"""
