"""The LLM layer: providers, router, validation, cost ledger, cache, skills.

It knows nothing of trading beyond the schemas it is given; see tripwire.llm.base for the
port every provider implements.
"""
