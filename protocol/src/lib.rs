//! Sans-IO client and server sessions of the private-inference protocol.
