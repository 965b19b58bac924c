"""causalmtl.metrics"""
