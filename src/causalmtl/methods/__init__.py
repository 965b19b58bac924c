"""causalmtl.methods"""
