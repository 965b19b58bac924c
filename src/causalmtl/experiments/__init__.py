"""causalmtl.experiments"""
