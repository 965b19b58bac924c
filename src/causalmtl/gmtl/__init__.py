"""causalmtl.gmtl"""
