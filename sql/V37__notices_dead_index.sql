-- The notices gauge (db::notices::backlog_counts) counts the `dead` ones every 10 s: through an
-- index of only those, it reads the few there are instead of every notice ever written. A notice
-- enters this index only when it dies, so delivery's writes cost it nothing.
CREATE INDEX notices_dead ON notices (seq) WHERE state = 'dead';
