"""Wire protocol version. Bump on any incompatible change to a message's shape."""

PROTOCOL_VERSION = 1
SERVER_VERSION = "0.1.0"
