"""causalmtl.train"""
