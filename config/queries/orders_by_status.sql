-- How many orders are in each status, and their total: the nightly report.
-- params:
-- mode: read
SELECT status, COUNT(*) AS orders, SUM(total_cents) AS total_cents
FROM orders
GROUP BY status
ORDER BY status
