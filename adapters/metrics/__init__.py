"""Prometheus metrics (`--metrics-addr`) and the counters they read: the bytes a
worker moves to and from its remote (`counting_storage`), and the collector that
asks every worker for its statistics at scrape time (`collector`)."""
