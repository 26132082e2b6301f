-- The time zone a person reads times in (an IANA name such as Europe/Paris); empty for UTC. Analytics buckets
-- calls by this zone's days and hours.
ALTER TABLE users ADD COLUMN time_zone TEXT NOT NULL DEFAULT '';
