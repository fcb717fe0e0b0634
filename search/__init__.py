"""cimc.search: network families and (later) the joint network + hardware search.

Imports only cimc's public API; the core never imports this package.
"""
