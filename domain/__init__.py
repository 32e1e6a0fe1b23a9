"""The CRM domain: aggregates, events, value rules and the lifecycle policy.

Imports the standard library and the eventsourcing base classes only.
"""
