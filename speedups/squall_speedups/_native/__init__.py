"""The compiled extension modules (built by mypyc; loaded by squall's finder)."""
