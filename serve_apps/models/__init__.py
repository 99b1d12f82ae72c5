"""Ray Serve deployments of the self-hosted models; `build_models_app` assembles them."""

from serve_apps.models.app import build_models_app

__all__ = ["build_models_app"]
