"""The daemon's admin API, on a unix socket of its own (`<cache-dir>/admin.sock`,
mode 0600): what `cloudvol status` and `cloudvol rc` talk to. Docker never sees
these routes: the plugin API is another app on another socket."""
