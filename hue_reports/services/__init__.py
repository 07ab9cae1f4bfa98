"""The domain, free of HTTP and RQ: plain functions a view, a job, a command and a test all call."""
