-- Directory changes that running gateways must apply at once (CONTRACT §7: suspension
-- and revocation take effect on the next request on every instance). Each writer appends
-- what it changed in the transaction of the change; every gateway's watcher reads the rows
-- after the last seq it applied and drops its cached identities and sessions accordingly.
-- `kind` is `user` (id = user id), `org` (id = org id) or `all` (id NULL: drop everything).
-- Rows are pruned after a while; a watcher that finds a gap drops everything.

CREATE TABLE directory_changes (
    seq BIGINT PRIMARY KEY,
    ts BIGINT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT
);

CREATE INDEX directory_changes_ts ON directory_changes (ts);

-- The last seq handed out. Writers claim seqs by updating this one row: on PostgreSQL its
-- row lock serialises them until commit, so changes become visible in seq order, without
-- gaps; a rolled-back claim is rolled back with it. Pruning never lowers it.
CREATE TABLE directory_change_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);

INSERT INTO directory_change_head (id, seq) VALUES (1, 0);
