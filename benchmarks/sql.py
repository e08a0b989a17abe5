"""The hand-written SQL a user would write instead of crmcore: GROUP BY + window functions over
the raw tables, for SQLite, PostgreSQL and DuckDB (which differ only in integer division)."""

from __future__ import annotations

from benchmarks.data import US_PER_DAY
from benchmarks.spec import AS_OF_US, RULES, K, rule_sql


def metrics_sql(
    customers: str, transactions: str, interactions: str, *, div: str, with_profile: bool
) -> str:
    profile = (
        ", c.stage, c.vip, c.newsletter, COALESCE(i.interactions, 0) AS interactions, "
        "COALESCE(i.complaints, 0) AS complaints"
        if with_profile
        else ""
    )
    contacts = (
        f"LEFT JOIN (SELECT customer_id, COUNT(*) AS interactions, "
        f"SUM(CASE WHEN kind = 1 THEN 1 ELSE 0 END) AS complaints FROM {interactions} "
        f"WHERE occurred_us <= {AS_OF_US} GROUP BY customer_id) i ON i.customer_id = c.id"
        if with_profile
        else ""
    )
    return f"""
    p AS (
        SELECT customer_id, COUNT(*) AS frequency, SUM(amount_minor) AS spent,
               MAX(occurred_us) AS last_us
        FROM {transactions} WHERE kind = 0 AND occurred_us <= {AS_OF_US} GROUP BY customer_id
    ),
    r AS (
        SELECT customer_id, SUM(amount_minor) AS refunded
        FROM {transactions} WHERE kind = 1 AND occurred_us <= {AS_OF_US} GROUP BY customer_id
    ),
    m AS (
        SELECT c.id, COALESCE(p.frequency, 0) AS frequency,
               COALESCE(p.spent, 0) - COALESCE(r.refunded, 0) AS monetary,
               ({AS_OF_US} - p.last_us) {div} {US_PER_DAY} AS recency_days{profile}
        FROM {customers} c
        LEFT JOIN p ON p.customer_id = c.id
        LEFT JOIN r ON r.customer_id = c.id
        {contacts}
    )"""


def rfm_sql(
    customers: str, transactions: str, segment_map: str, *, div: str = "/", source: str = ""
) -> str:
    """id, r, f, m, segment of every scored customer (shared ties: RANK)."""
    metrics = source or metrics_sql(customers, transactions, "", div=div, with_profile=False)
    return f"""
    WITH {metrics},
    s AS (
        SELECT id,
               RANK() OVER (ORDER BY recency_days DESC) AS rr,
               RANK() OVER (ORDER BY frequency) AS fr,
               RANK() OVER (ORDER BY monetary) AS mr,
               COUNT(*) OVER () AS n
        FROM m WHERE frequency > 0
    ),
    q AS (
        SELECT id, 1 + ({K} * (rr - 1)) {div} n AS r, 1 + ({K} * (fr - 1)) {div} n AS f,
               1 + ({K} * (mr - 1)) {div} n AS m
        FROM s
    )
    SELECT q.id, q.r, q.f, q.m, sm.code
    FROM q JOIN {segment_map} sm ON sm.r = q.r AND sm.f = q.f AND sm.m = q.m
    """


def scores_sql(aggregates: str, *, div: str = "/") -> str:
    """Scores only, from a per-customer aggregate table (id, recency_days, frequency, monetary)."""
    return f"""
    WITH s AS (
        SELECT id,
               RANK() OVER (ORDER BY recency_days DESC) AS rr,
               RANK() OVER (ORDER BY frequency) AS fr,
               RANK() OVER (ORDER BY monetary) AS mr,
               COUNT(*) OVER () AS n
        FROM {aggregates} WHERE frequency > 0
    )
    SELECT id, 1 + ({K} * (rr - 1)) {div} n, 1 + ({K} * (fr - 1)) {div} n,
           1 + ({K} * (mr - 1)) {div} n
    FROM s
    """


def rules_sql(customers: str, transactions: str, interactions: str, *, div: str = "/") -> str:
    """id and the ten rule memberships as a bit mask, for every customer with any."""
    metrics = metrics_sql(customers, transactions, interactions, div=div, with_profile=True)
    bits = " + ".join(
        f"(CASE WHEN {rule_sql(node)} THEN {1 << i} ELSE 0 END)"
        for i, (_, node) in enumerate(RULES)
    )
    return f"""
    WITH {metrics},
    b AS (SELECT id, {bits} AS bits FROM m)
    SELECT id, bits FROM b WHERE bits <> 0
    """


def one_customer_sql(transactions: str, interactions: str, customers: str, param: str) -> str:
    """The metrics of one customer, recomputed from the raw rows (uses the customer_id index)."""
    return f"""
    SELECT
      (SELECT COUNT(*) FROM {transactions}
        WHERE customer_id = {param} AND kind = 0 AND occurred_us <= {AS_OF_US}),
      (SELECT COALESCE(SUM(CASE WHEN kind = 0 THEN amount_minor ELSE -amount_minor END), 0)
         FROM {transactions} WHERE customer_id = {param} AND occurred_us <= {AS_OF_US}),
      (SELECT MAX(occurred_us) FROM {transactions}
        WHERE customer_id = {param} AND kind = 0 AND occurred_us <= {AS_OF_US}),
      (SELECT COUNT(*) FROM {interactions}
        WHERE customer_id = {param} AND occurred_us <= {AS_OF_US}),
      (SELECT COUNT(*) FROM {interactions}
        WHERE customer_id = {param} AND kind = 1 AND occurred_us <= {AS_OF_US}),
      stage, vip, newsletter
    FROM {customers} WHERE id = {param}
    """


# -- the SQL baselines: raw tables beside crmcore's, in the same database ---------------------

RAW = {
    "customers": "bench_customers",
    "transactions": "bench_transactions",
    "interactions": "bench_interactions",
}
DDL = {
    "bench_customers": "id BIGINT PRIMARY KEY, created_us BIGINT NOT NULL, stage TEXT NOT NULL, "
    "vip SMALLINT NOT NULL, newsletter SMALLINT NOT NULL",
    "bench_transactions": "customer_id BIGINT NOT NULL, occurred_us BIGINT NOT NULL, "
    "kind SMALLINT NOT NULL, amount_minor BIGINT NOT NULL, channel SMALLINT NOT NULL",
    "bench_interactions": "customer_id BIGINT NOT NULL, occurred_us BIGINT NOT NULL, "
    "channel SMALLINT NOT NULL, kind SMALLINT NOT NULL, direction SMALLINT NOT NULL",
    "bench_segment_map": "r SMALLINT NOT NULL, f SMALLINT NOT NULL, m SMALLINT NOT NULL, "
    "code SMALLINT NOT NULL, PRIMARY KEY (r, f, m)",
}
INDEXES = (
    "CREATE INDEX bench_transactions_customer ON bench_transactions (customer_id)",
    "CREATE INDEX bench_interactions_customer ON bench_interactions (customer_id)",
)
