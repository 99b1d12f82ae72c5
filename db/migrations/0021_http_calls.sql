-- External calls made by flows' http nodes, recorded BEFORE the call goes out: a step that is
-- retried (it lost the optimistic version race, or its event was delivered again) finds the
-- call here and reuses its result instead of calling the outside world a second time.
CREATE TABLE http_calls (
    session_id  uuid NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    -- Stable per (session, inbound event, node, visit): also sent as Idempotency-Key.
    call_id     text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    result      jsonb,
    done_at     timestamptz,
    PRIMARY KEY (session_id, call_id)
);
