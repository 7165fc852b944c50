"""podpreset's I/O side: the webhook server, preset sources, and the ``podpreset`` CLI.

Importing this package imports nothing heavy: Flask, gunicorn and the Kubernetes client are
imported only by the modules that need them, so ``podpreset apply|review|validate`` start fast.
"""
