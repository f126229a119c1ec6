"""The decision-quality lab behind ``tripwire eval``: what each analyst is worth, measured.

:mod:`~tripwire.lab.mapping` (the expert's class per event kind, fixed before scoring),
:mod:`~tripwire.lab.markets`, :mod:`~tripwire.lab.policies` (the arms compared; extend with
``register``), :mod:`~tripwire.lab.triage`, :mod:`~tripwire.lab.metrics`,
:mod:`~tripwire.lab.stats` (bootstrap CIs, the paired test), :mod:`~tripwire.lab.summary`,
:mod:`~tripwire.lab.decision_log` (the reproducibility hash), :mod:`~tripwire.lab.leakage`
and :mod:`~tripwire.lab.report`. The Ray fan-out is ``actors.eval``.
"""
