"""Shared state for governance: limits, parallel slots, spend and the usage ledger.

`store` is the interface, `memory`/`sqlite`/`redis` its implementations, `limits` the pure
rules, `guard` the failure mode, `ledger`/`report` the usage ledger, `connect` the choice.
"""
