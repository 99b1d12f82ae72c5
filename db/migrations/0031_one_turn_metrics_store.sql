-- One store of per-turn metrics: `sessions.metrics` (turns and provider usage, written by the
-- voice session and the session service). `transcript_turns.metrics` was never written.
ALTER TABLE transcript_turns DROP COLUMN IF EXISTS metrics;
