"""A real-network test kit: TLS certificates (``tls``), a real forward proxy (``proxy``) and a
latency-shaping TCP relay (``shaper``), all on 127.0.0.1. See each module's docstring.

Only ``tls`` needs a third-party package (``trustme``); ``proxy`` runs the ``proxy.py``
package in a subprocess; ``shaper`` is standard library only.
"""
