"""The LangGraph state machines: triage (:mod:`.triage`) and sign-off (:mod:`.signoff`).

Routing and node wrappers only (:mod:`.guard`: every node fails closed); the policy they
apply (sizing, re-check, pre-trade refusal, signatures, fact-checks) is plain functions in
:mod:`tripwire.decisions` and :mod:`tripwire.risk`. :mod:`.runner` runs incidents through
both graphs, pauses for people and resumes after a crash; :mod:`.deps` is what the graphs
need from outside, in one object.
"""
