"""The Ray Serve layer: the live driver, its HTTP API and console, and the Serve-side commands.

:mod:`.app` and :mod:`.deploy` build the Serve application (ingress :mod:`.api`, the
orchestrator :mod:`.orchestrator` that drives the engine live, the console); :mod:`.demo`
runs the whole system on a laptop; :mod:`.jobs` holds the Ray jobs (backtest, sweep, live,
report) that ``ray job submit`` runs with ``python -m``. The ``tripwire`` commands of this
layer are parsed in :mod:`.commands`.
"""
