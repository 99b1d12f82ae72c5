-- An episode belongs to its session: erasing a user's sessions erases what they said, and a
-- turn still being embedded when its session is erased cannot be stored afterwards.
ALTER TABLE memory_episodes
    ADD CONSTRAINT memory_episodes_session FOREIGN KEY (session_id)
    REFERENCES sessions(id) ON DELETE CASCADE;
CREATE INDEX memory_episodes_session ON memory_episodes (session_id);
