"""Routing by load: each lead to the least-loaded eligible rep, a returning contact to its owner."""
