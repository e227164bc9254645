-- span_metrics: RED metrics of spans per minute — calls, errors and duration
-- percentiles per service, span name, span kind and status. `time` is the
-- start of the minute the spans started in. It is the table function
-- span_metrics(start, end, step) of sql/span_metrics_window.sql over all
-- time in one-minute buckets: call the function for another bucket width or
-- for a time window that prunes blocks. (No semicolons in these comments:
-- the loader splits statements on them.)
CREATE VIEW span_metrics AS
SELECT * FROM span_metrics(
    TIMESTAMP '1970-01-01T00:00:00Z',
    TIMESTAMP '2262-04-11T00:00:00Z',
    INTERVAL '1 minute'
);
