-- Usage data (issue 6 item 8): requests the gateway forwarded for an authenticated user,
-- counted in memory on the request path and added here by every instance once a minute
-- (an upsert that adds to `requests`). One row per UTC day (unix seconds / 86400), org,
-- user and route name. No foreign keys: a flush must never fail because a user or org
-- was removed in the meantime, and usage history outlives them. Rows older than 35 days
-- are pruned by the gateway's upkeep.
-- (Version 4 is kept for the lifecycle migration.)

CREATE TABLE usage_daily (
    day BIGINT NOT NULL,
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    route TEXT NOT NULL,
    requests BIGINT NOT NULL,
    PRIMARY KEY (day, org_id, user_id, route)
);

CREATE INDEX usage_daily_org ON usage_daily (org_id, day);
CREATE INDEX usage_daily_user ON usage_daily (user_id, day);
