"""placeholder"""
SPEC = None
