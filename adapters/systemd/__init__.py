"""What the daemon tells systemd when it runs as a Type=notify service."""
