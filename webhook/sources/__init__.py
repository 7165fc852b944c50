"""Where presets come from: the file source, the Kubernetes watch, the live preview, their health."""
