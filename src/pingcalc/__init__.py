"""pingcalc: ping and calculate over an authenticated HTTP API, hardened."""

__version__ = "0.1.0"
