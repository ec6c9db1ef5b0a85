-- Slow recipients get their own delivery workers (API.md section 7: one slow or dead receiver never
-- delays another, nor do many). A lane is `slow` when an attempt of its last run stayed unanswered
-- longer than `notices.slow_after_ms`; such lanes are claimed only by each instance's
-- `notices.slow_workers`, the others only by its `notices.workers`. The flag is written when the
-- lane is given back, so every instance sees it at its next claim.
ALTER TABLE notice_lanes ADD COLUMN slow boolean NOT NULL DEFAULT false;
