"""The tick store's tables: their DDL, columns and schema version (ClickHouse SQL only).

``{db}`` and ``{version}`` in the DDL are filled in by :class:`tripwire.store.ticks.TickStore`
when it opens a store; a store records every schema version applied in ``schema_version``
and migrates older ones on open.
"""

from __future__ import annotations

# v2: a trade is stored once (v1 stores are deduplicated on open).
# v3: news.published_ns, the source's own time of a headline (older stores gain the column
# on open; their rows read 0: unknown).
SCHEMA_VERSION = 3
TABLES = ("ticks", "anomalies", "dead_letters", "news", "labels")


TABLE_DDL = {
    "ticks": """
        CREATE TABLE IF NOT EXISTS {db}.ticks (
            symbol LowCardinality(String),
            ts Int64 COMMENT 'exchange trade time, ns since the Unix epoch, UTC',
            price Float64,
            qty Float64,
            side Int8 COMMENT '1 taker bought, -1 taker sold, 0 unknown',
            trade_id Int64 COMMENT 'the exchange id (>= 0), else derived (< -1; see trade_ids.py)',
            recv_ns Int64 COMMENT 'arrival time, ns UTC; 0 when unknown',
            source LowCardinality(String),
            time DateTime64(9, 'UTC') ALIAS fromUnixTimestamp64Nano(ts)
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMM(fromUnixTimestamp64Nano(ts))
        ORDER BY (symbol, ts)
        COMMENT 'tripwire tick store schema v{version}'""",
    "anomalies": """
        CREATE TABLE IF NOT EXISTS {db}.anomalies (
            id String,
            symbol LowCardinality(String) COMMENT 'empty when unknown',
            symbol_id Int32 COMMENT 'id in the writer''s symbol table',
            ts Int64,
            metric LowCardinality(String),
            z Float64,
            window_mean Float64,
            window_std Float64,
            value Float64,
            batch_row Int64,
            price Float64,
            qty Float64,
            trade_id Int64,
            recv_ns Int64,
            detected_ns Int64,
            source LowCardinality(String),
            has_snapshot Bool,
            snapshot_ts Array(Int64),
            snapshot_price Array(Float64),
            snapshot_qty Array(Float64),
            window_stats String COMMENT 'JSON object; empty when none'
        ) ENGINE = MergeTree
        ORDER BY (symbol, ts)
        COMMENT 'tripwire tick store schema v{version}'""",
    "dead_letters": """
        CREATE TABLE IF NOT EXISTS {db}.dead_letters (
            ts Int64 COMMENT 'when the input was refused',
            source LowCardinality(String),
            reason LowCardinality(String),
            symbol LowCardinality(String) COMMENT 'empty when unknown',
            raw String,
            detail String
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMM(fromUnixTimestamp64Nano(ts))
        ORDER BY (ts, source)
        COMMENT 'tripwire tick store schema v{version}'""",
    "news": """
        CREATE TABLE IF NOT EXISTS {db}.news (
            id String,
            ts Int64,
            headline String,
            symbols Array(String) COMMENT 'empty for market-wide news',
            source LowCardinality(String),
            body String,
            published_ns Int64 DEFAULT 0
                COMMENT 'the source''s own time, ns UTC; 0 unknown (ts: when it could be read)'
        ) ENGINE = MergeTree
        ORDER BY (ts, id)
        COMMENT 'tripwire tick store schema v{version}'""",
    "labels": """
        CREATE TABLE IF NOT EXISTS {db}.labels (
            id String,
            kind LowCardinality(String),
            symbol LowCardinality(String),
            start_ns Int64,
            end_ns Int64 COMMENT 'inclusive',
            magnitude Float64,
            news_id String COMMENT 'empty when none'
        ) ENGINE = MergeTree
        ORDER BY (symbol, start_ns)
        COMMENT 'tripwire tick store schema v{version}'""",
}

# A row per schema version ever applied: a later version reads the highest and migrates.
VERSION_TABLE_DDL = """
    CREATE TABLE IF NOT EXISTS {db}.schema_version (
        version UInt32,
        applied_ns Int64
    ) ENGINE = MergeTree
    ORDER BY version"""

TICK_COLUMNS = ("symbol", "ts", "price", "qty", "side", "trade_id", "recv_ns", "source")
# v3's column, added in place to a store an older version made (ALTER ... ADD COLUMN).
NEWS_V3_COLUMN = ("published_ns Int64 DEFAULT 0 COMMENT 'the source''s own time, ns UTC; "
                  "0 unknown (ts: when it could be read)'")
ANOMALY_COLUMNS = (
    "id", "symbol", "symbol_id", "ts", "metric", "z", "window_mean", "window_std", "value",
    "batch_row", "price", "qty", "trade_id", "recv_ns", "detected_ns", "source",
    "has_snapshot", "snapshot_ts", "snapshot_price", "snapshot_qty", "window_stats",
)
DEAD_COLUMNS = ("ts", "source", "reason", "symbol", "raw", "detail")
NEWS_COLUMNS = ("id", "ts", "headline", "symbols", "source", "body", "published_ns")
LABEL_COLUMNS = ("id", "kind", "symbol", "start_ns", "end_ns", "magnitude", "news_id")
