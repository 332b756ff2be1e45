"""Throw-away TLS certificates for 127.0.0.1 and localhost, made in the test run with trustme.

    certs = make_certs(tmp_path)            # a fresh CA and a server certificate
    requests.get(url, verify=certs.ca_pem)  # or REQUESTS_CA_BUNDLE=certs.ca_pem
    server_ctx = certs.server_context()     # for a stdlib / asyncio TLS server
    client_ctx = certs.client_context()     # an ssl.SSLContext that trusts only the CA

The server certificate carries the SANs ``IP:127.0.0.1`` and ``DNS:localhost``. Everything is
a path to a PEM file, so it can be handed to subprocesses (Gradio's ``ssl_certfile`` /
``ssl_keyfile``, proxy.py's ``--cert-file`` / ``--key-file``).

trustme versions: 1.2.x needs Python >= 3.9, 1.1.0 is the last for 3.8 and 1.0.0 the last for
3.7; pip picks the right one, and this module uses only API all three have.
"""

from __future__ import annotations

import os
import ssl

import trustme

#: The identities (SANs) of the server certificate.
IDENTITIES = ("127.0.0.1", "localhost")


class Certs:
    """Paths of the PEM files ``make_certs`` wrote, and SSL contexts built from them.

    Attributes:
        directory: where the files are.
        ca_pem: the CA certificate: a CA bundle for ``verify=`` / ``REQUESTS_CA_BUNDLE``.
        cert_pem: the server certificate chain (leaf first).
        key_pem: the server's private key (unencrypted).
        combined_pem: key and chain in one file, for servers that take a single file.
        ca: the ``trustme.CA`` (to issue more certificates, e.g. a client certificate).
        server: the ``trustme.LeafCert`` of the server certificate.
    """

    def __init__(self, directory, ca, server):
        self.directory = directory
        self.ca = ca
        self.server = server
        self.ca_pem = os.path.join(directory, "ca.pem")
        self.cert_pem = os.path.join(directory, "server-chain.pem")
        self.key_pem = os.path.join(directory, "server-key.pem")
        self.combined_pem = os.path.join(directory, "server-combined.pem")

    def __repr__(self):
        return "<Certs %s>" % self.directory

    # servers.start_server(tls=...) reads these three names, so a Certs can be passed as is.
    @property
    def certfile(self):
        return self.cert_pem

    @property
    def keyfile(self):
        return self.key_pem

    @property
    def cafile(self):
        return self.ca_pem

    def client_context(self):
        """A new client ``ssl.SSLContext`` that trusts only this CA (hostname checks on)."""
        return ssl.create_default_context(cafile=self.ca_pem)

    def server_context(self):
        """A new server ``ssl.SSLContext`` that presents the server certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_pem, self.key_pem)
        return ctx


def make_certs(directory, identities=IDENTITIES):
    """Make a new CA and a server certificate for ``identities``; write the PEMs into
    ``directory`` (created if missing; a str or a path); return a ``Certs``."""
    directory = os.path.abspath(os.fspath(directory))
    os.makedirs(directory, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert(*identities)
    certs = Certs(directory, ca, server)
    ca.cert_pem.write_to_path(certs.ca_pem)
    with open(certs.cert_pem, "wb") as f:
        for blob in server.cert_chain_pems:
            f.write(blob.bytes())
    server.private_key_pem.write_to_path(certs.key_pem)
    server.private_key_and_cert_chain_pem.write_to_path(certs.combined_pem)
    return certs
