"""causalmtl.report"""
