//! Native client (library + CLI) for private inference against a server.
