"""Deploying: the modes by name (the registry), a deployment's deploy/destroy/status, the lab, the service."""
