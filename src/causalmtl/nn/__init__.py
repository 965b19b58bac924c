"""causalmtl.nn"""
