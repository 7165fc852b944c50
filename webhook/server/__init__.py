"""The serving process: ``serve``, the gunicorn worker, pre-fork, TLS, probes and the Flask app."""
