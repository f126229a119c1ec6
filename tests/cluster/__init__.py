"""Tests of cluster/ (launcher, Serve and runtime-env configs) and serve_apps.deploy."""
