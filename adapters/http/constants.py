"""Docker's plugin content type, shared by the routes and their schema."""

PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1.1+json"
