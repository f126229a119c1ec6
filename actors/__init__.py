"""The Ray layer: the engine's ports as Ray actors and tasks, and the data plane's commands.

Detector shards (:mod:`.shard`), the tick store's one writer (:mod:`.sink`), feed actors and
their batching (:mod:`.feed`, :mod:`.batching`), the data plane behind an intake
(:mod:`.dataplane`, :mod:`.pipeline`), and the backtest / sweep / eval fan-outs as Ray tasks
(:mod:`.backtest`, :mod:`.sweep`, :mod:`.eval`). The ``tripwire`` commands of this layer are
parsed in :mod:`.commands`. Thin: wiring, batching, backpressure; the tick path itself is
:mod:`tripwire.engine`.
"""
