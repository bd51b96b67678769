-- When a session was last used: sessions unused for longer than the idle timeout end.
ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0;
