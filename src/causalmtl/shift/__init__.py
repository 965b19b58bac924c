"""causalmtl.shift"""
